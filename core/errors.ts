// A SiaError is a user's problem (bad input, bad option), not a bug: the CLI prints its message as
// one line naming the file or key and exits non-zero, with no stack trace unless --debug.

export class SiaError extends Error {
  override name = "SiaError";
  /** Exit status: 2 for usage errors (flags, config keys), 1 for everything else. */
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** An error about a file: the message always starts with the file's path. */
export function fileError(path: string, problem: string): SiaError {
  return new SiaError(`${path}: ${problem}`);
}

/** An error about an option or config key: usage errors exit with 2. */
export function keyError(key: string, problem: string): SiaError {
  return new SiaError(`${key}: ${problem}`, 2);
}
