import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { OrchestratorService } from "./gen/tator/orchestrator/v1/orchestrator_pb";
import { type Detail, errorLine, explain, type Explained } from "./logic/errors";

export type Api = Client<typeof OrchestratorService>;

/** Envoy's grpc-web URL: ?api=… wins, then the static server's /config.json, then this origin. */
export async function apiUrl(): Promise<string> {
  const fromQuery = new URLSearchParams(location.search).get("api");
  if (fromQuery) return fromQuery;
  try {
    const res = await fetch("config.json", { cache: "no-cache" });
    if (res.ok) {
      const cfg = (await res.json()) as { api?: string };
      if (cfg.api) return cfg.api;
    }
  } catch {
    // no config.json: same origin
  }
  return location.origin;
}

export function makeApi(baseUrl: string): Api {
  return createClient(OrchestratorService, createGrpcWebTransport({ baseUrl }));
}

const snake = (s: string) => s.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();

export function explainError(e: unknown): Explained {
  if (e instanceof ConnectError) {
    const details = e.details.filter((d): d is Detail => "type" in d && d.value instanceof Uint8Array);
    return explain(snake(Code[e.code] ?? String(e.code)), e.rawMessage, details);
  }
  return { code: "CLIENT", reason: "", message: e instanceof Error ? e.message : String(e), fields: [], metadata: {} };
}

export function describeError(e: unknown): string {
  return errorLine(explainError(e));
}

export function isAbort(e: unknown): boolean {
  return e instanceof ConnectError && e.code === Code.Canceled;
}
