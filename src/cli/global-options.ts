export interface GlobalOptions {
  api: string;
  json: boolean;
  token?: string;
  caFile?: string;
  config?: string;
}
