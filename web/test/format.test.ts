import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { ExemplarPromptSchema, PromptSchema } from "../src/gen/tator/common/v1/common_pb";
import { promptText } from "../src/logic/format";

describe("promptText", () => {
  it("shows a text prompt as spelled and exemplars by label and box indexes", () => {
    expect(promptText(create(PromptSchema, { kind: { case: "text", value: "Orb" } }))).toBe("Orb");
    const exemplar = create(ExemplarPromptSchema, { label: "circle", positiveIndexes: [0, 2] });
    expect(promptText(create(PromptSchema, { kind: { case: "exemplar", value: exemplar } }))).toBe("exemplars circle #0,2");
    expect(promptText(create(PromptSchema, {}))).toBe("");
  });
});
