// A Dockerfile as its stages and their instructions (dockerfile-ast), for the checks of the image and of
// the files that must agree with it (its user, its commands).
import assert from "node:assert/strict";
import { DockerfileParser, type Instruction } from "dockerfile-ast";

export interface Stage {
  name: string | null;
  instructions: Instruction[];
}

export function stages(text: string): Stage[] {
  const out: Stage[] = [];
  for (const instruction of DockerfileParser.parse(text).getInstructions()) {
    if (instruction.getKeyword() === "FROM") {
      const m = /\sAS\s+(\S+)\s*$/i.exec(instruction.getArgumentsContent() ?? "");
      out.push({ name: m?.[1] ?? null, instructions: [] });
    }
    out.at(-1)?.instructions.push(instruction);
  }
  return out;
}

/** An instruction's text after its keyword, flags included (dockerfile-ast's argument text leaves them out). */
export const args = (i: Instruction): string => i.toString().slice(i.getKeyword().length).trim();
export const ofKind = (s: Stage, keyword: string): Instruction[] => s.instructions.filter((i) => i.getKeyword() === keyword);

/** The exec-form JSON of a CMD or HEALTHCHECK ... CMD. */
export function execForm(text: string): string[] {
  const m = /(\[.*\])\s*$/s.exec(text);
  assert.ok(m, `not in exec (JSON) form: ${text}`);
  const value: unknown = JSON.parse(m[1] as string);
  assert.ok(Array.isArray(value) && value.every((v) => typeof v === "string"), `not a JSON list of strings: ${text}`);
  return value;
}
