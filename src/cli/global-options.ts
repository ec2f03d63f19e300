export interface GlobalOptions {
  api: string;
  json: boolean;
  config?: string;
}
