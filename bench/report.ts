// Benchmarks write their figures into BENCHMARKS.md, each in its own marked section, so one
// benchmark's rerun leaves the others' figures alone.

const FILE = new URL("../BENCHMARKS.md", import.meta.url);

export async function writeSection(name: string, markdown: string): Promise<void> {
  let text = "";
  try {
    text = await Deno.readTextFile(FILE);
  } catch {
    text =
      "# Benchmarks\n\nEvery figure here was measured on this project's 2-core machine by the command shown " +
      "with it; peers run in the same process tree, minutes apart, since these machines drift 15 to 30 % " +
      "between passes. Only side-by-side ratios are meaningful.\n";
  }
  const begin = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const section = `${begin}\n${markdown.trim()}\n${end}`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  text = i >= 0 && j > i
    ? text.slice(0, i) + section + text.slice(j + end.length)
    : `${text.trimEnd()}\n\n${section}\n`;
  const temp = `${FILE.pathname}.tmp`;
  await Deno.writeTextFile(temp, text);
  await Deno.rename(temp, FILE);
  // Tables padded as `deno task check` wants them, so a bench run leaves the tree clean.
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", FILE.pathname] }).output();
}

/** Runs a peer script and returns its stdout; throws with its stderr when it fails. */
export async function runPeer(args: string[], env: Record<string, string> = {}): Promise<string> {
  const command = new Deno.Command("env", {
    args: ["-u", "OPENBLAS_CORETYPE", "-u", "OPENBLAS_L2_SIZE", ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  });
  const out = await command.output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`peer ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return stdout;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export const PEERS = new URL("../../shared/peers/", import.meta.url).pathname;
