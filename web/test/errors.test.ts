import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { decodeBadRequest, decodeErrorInfo, errorLine, explain } from "../src/logic/errors";

function errorInfo(reason: string, domain: string, meta: Record<string, string>): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, 2).string(reason).tag(2, 2).string(domain);
  for (const [k, v] of Object.entries(meta)) w.tag(3, 2).bytes(new BinaryWriter().tag(1, 2).string(k).tag(2, 2).string(v).finish());
  return w.finish();
}

function badRequest(violations: [string, string][]): Uint8Array {
  const w = new BinaryWriter();
  for (const [f, d] of violations) w.tag(1, 2).bytes(new BinaryWriter().tag(1, 2).string(f).tag(2, 2).string(d).finish());
  return w.finish();
}

describe("server error details", () => {
  it("decodes google.rpc.ErrorInfo and BadRequest", () => {
    expect(decodeErrorInfo(errorInfo("JOB_NOT_FOUND", "tator", { job_id: "j1" }))).toEqual(
      { reason: "JOB_NOT_FOUND", domain: "tator", metadata: { job_id: "j1" } });
    expect(decodeBadRequest(badRequest([["name", "must be at least 1 characters"], ["text", "too long"]]))).toEqual([
      { field: "name", description: "must be at least 1 characters" }, { field: "text", description: "too long" }]);
  });

  it("explains an error as code, reason, message and fields, ignoring unknown details", () => {
    const e = explain("INVALID_ARGUMENT", "bad request", [
      { type: "google.rpc.ErrorInfo", value: errorInfo("INVALID_FIELD", "tator", {}) },
      { type: "google.rpc.BadRequest", value: badRequest([["name", "empty"]]) },
      { type: "google.rpc.DebugInfo", value: new Uint8Array([1, 2, 3]) },
    ]);
    expect(errorLine(e)).toBe("INVALID_ARGUMENT (INVALID_FIELD): bad request — name: empty");
    expect(errorLine(explain("UNAVAILABLE", "down", []))).toBe("UNAVAILABLE: down");
  });
});
