// Server errors as the user should read them: status code, the documented reason (google.rpc.ErrorInfo)
// and field violations (google.rpc.BadRequest), decoded from the grpc-web status details.
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";

export interface Detail {
  type: string;
  value: Uint8Array;
}

export interface Explained {
  code: string;
  reason: string;
  message: string;
  fields: { field: string; description: string }[];
  metadata: Record<string, string>;
}

function readStrings(bytes: Uint8Array, wanted: Record<number, (s: string | Uint8Array) => void>): void {
  const r = new BinaryReader(bytes);
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (wt === WireType.LengthDelimited && wanted[no]) {
      wanted[no](r.bytes());
    } else {
      r.skip(wt);
    }
  }
}

const text = (b: string | Uint8Array) => (typeof b === "string" ? b : new TextDecoder().decode(b));

export function decodeErrorInfo(bytes: Uint8Array): { reason: string; domain: string; metadata: Record<string, string> } {
  const out = { reason: "", domain: "", metadata: {} as Record<string, string> };
  readStrings(bytes, {
    1: (b) => (out.reason = text(b)),
    2: (b) => (out.domain = text(b)),
    3: (b) => {
      let k = "", v = "";
      readStrings(b as Uint8Array, { 1: (x) => (k = text(x)), 2: (x) => (v = text(x)) });
      out.metadata[k] = v;
    },
  });
  return out;
}

export function decodeBadRequest(bytes: Uint8Array): { field: string; description: string }[] {
  const out: { field: string; description: string }[] = [];
  readStrings(bytes, {
    1: (b) => {
      const v = { field: "", description: "" };
      readStrings(b as Uint8Array, { 1: (x) => (v.field = text(x)), 2: (x) => (v.description = text(x)) });
      out.push(v);
    },
  });
  return out;
}

export function explain(code: string, message: string, details: readonly Detail[]): Explained {
  const out: Explained = { code, reason: "", message, fields: [], metadata: {} };
  for (const d of details) {
    if (d.type === "google.rpc.ErrorInfo") {
      const info = decodeErrorInfo(d.value);
      out.reason = info.reason;
      out.metadata = info.metadata;
    } else if (d.type === "google.rpc.BadRequest") {
      out.fields.push(...decodeBadRequest(d.value));
    }
  }
  return out;
}

/** One line: "INVALID_ARGUMENT (INVALID_FIELD): message — field: why". */
export function errorLine(e: Explained): string {
  const head = e.reason ? `${e.code} (${e.reason})` : e.code;
  const fields = e.fields.map((f) => `${f.field}: ${f.description}`).join("; ");
  return `${head}: ${e.message}${fields ? ` — ${fields}` : ""}`;
}
