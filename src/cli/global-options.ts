export interface GlobalOptions {
  api: string;
  json: boolean;
  token?: string;
  config?: string;
}
