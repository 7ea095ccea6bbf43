// Output files: atomic writes leave exactly the final file with exact bytes, failures are
// SiaErrors naming the path, checkWritableDir probes without creating, prepareOutDir removes only
// what its predicate selects.

import assert from "node:assert/strict";
import { SiaError } from "../../core/errors.ts";
import {
  atomicWrite,
  atomicWriteAll,
  atomicWriteText,
  checkWritableDir,
  prepareOutDir,
} from "../../core/files.ts";
import { listNames, withTempDir } from "../_shared.ts";

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Awaits `p`, which must reject with a SiaError whose message starts with `path: `. */
async function rejectsNaming(p: Promise<unknown>, path: string, ...parts: string[]) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof SiaError, `expected a SiaError, got ${e}`);
    assert.ok(e.message.startsWith(`${path}: `), e.message);
    for (const part of parts) assert.ok(e.message.includes(part), e.message);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// atomicWrite

Deno.test("atomicWrite leaves only the final file, with exact bytes", async () => {
  await withTempDir(async (dir) => {
    const bytes = Uint8Array.from({ length: 70_001 }, (_, i) => (i * 131 + (i >> 7)) & 255);
    await atomicWrite(`${dir}/data.bin`, bytes);
    assert.deepEqual(await listNames(dir), ["data.bin"]);
    assert.deepEqual(await Deno.readFile(`${dir}/data.bin`), bytes);
  });
});

Deno.test("atomicWrite replaces an existing file whole", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/out.npy`;
    await atomicWrite(path, new Uint8Array(1000).fill(7));
    const second = Uint8Array.of(1, 2, 3);
    await atomicWrite(path, second);
    assert.deepEqual(await Deno.readFile(path), second);
    assert.deepEqual(await listNames(dir), ["out.npy"]);
  });
});

Deno.test("atomicWrite of many files at once leaves no temporary files", async () => {
  await withTempDir(async (dir) => {
    const files = Array.from({ length: 20 }, (_, i) => `f${String(i).padStart(2, "0")}.bin`);
    await Promise.all(files.map((f, i) => atomicWrite(`${dir}/${f}`, new Uint8Array(i + 1))));
    assert.deepEqual(await listNames(dir), files);
    for (const [i, f] of files.entries()) {
      assert.equal((await Deno.readFile(`${dir}/${f}`)).length, i + 1);
    }
  });
});

Deno.test("atomicWriteText writes UTF-8", async () => {
  await withTempDir(async (dir) => {
    const text = "# summary\n\nmemorized < 1/3 – ünïcödé ✓\n";
    await atomicWriteText(`${dir}/summary.md`, text);
    assert.equal(await Deno.readTextFile(`${dir}/summary.md`), text);
    assert.deepEqual(await Deno.readFile(`${dir}/summary.md`), new TextEncoder().encode(text));
    assert.deepEqual(await listNames(dir), ["summary.md"]);
  });
});

Deno.test("atomicWrite under a regular file throws a SiaError naming the path", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/plain`, "x");
    const path = `${dir}/plain/shard.npy`;
    await rejectsNaming(atomicWrite(path, Uint8Array.of(1)), path, "could not write");
    assert.deepEqual(await listNames(dir), ["plain"]);
    assert.equal(await Deno.readTextFile(`${dir}/plain`), "x");
  });
});

Deno.test("atomicWrite into a missing directory throws and leaves nothing", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/missing/shard.npy`;
    await rejectsNaming(atomicWrite(path, Uint8Array.of(1)), path, "no such file");
    assert.deepEqual(await listNames(dir), []);
  });
});

Deno.test("atomicWrite onto an existing directory throws and leaves no temporary file", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/taken`);
    await Deno.writeTextFile(`${dir}/taken/inner`, "keep");
    const path = `${dir}/taken`;
    await rejectsNaming(atomicWrite(path, Uint8Array.of(1, 2)), path, "could not write");
    assert.deepEqual(await listNames(dir), ["taken"]);
    assert.equal(await Deno.readTextFile(`${dir}/taken/inner`), "keep");
  });
});

// ---------------------------------------------------------------------------------------------
// checkWritableDir

Deno.test("checkWritableDir accepts an existing directory and leaves it as it was", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/a`, "1");
    await checkWritableDir(dir);
    await checkWritableDir(`${dir}/`);
    assert.deepEqual(await listNames(dir), ["a"]);
  });
});

Deno.test("checkWritableDir accepts a not-yet-existing nested dir without creating it", async () => {
  await withTempDir(async (dir) => {
    const target = `${dir}/runs/x/y/z`;
    await checkWritableDir(target);
    assert.equal(await exists(`${dir}/runs`), false);
    assert.deepEqual(await listNames(dir), [], "no probe file or directory left behind");
  });
});

Deno.test("checkWritableDir rejects a path under a regular file, naming the path", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "x");
    for (const target of [`${dir}/file/out`, `${dir}/file/out/deeper`, `${dir}/file`]) {
      await rejectsNaming(checkWritableDir(target), target, "output directory");
    }
    assert.deepEqual(await listNames(dir), ["file"]);
  });
});

Deno.test({
  name: "checkWritableDir rejects a directory it cannot write to",
  // Root can write anywhere; the check is meaningful only for an ordinary user.
  ignore: Deno.build.os === "windows" || Deno.uid?.() === 0,
  async fn() {
    await withTempDir(async (dir) => {
      const locked = `${dir}/locked`;
      await Deno.mkdir(locked);
      await Deno.chmod(locked, 0o500);
      try {
        await rejectsNaming(checkWritableDir(`${locked}/out`), `${locked}/out`, "not writable");
      } finally {
        await Deno.chmod(locked, 0o700);
      }
    });
  },
});

// ---------------------------------------------------------------------------------------------
// prepareOutDir

Deno.test("prepareOutDir creates a nested directory", async () => {
  await withTempDir(async (dir) => {
    const target = `${dir}/a/b/c`;
    await prepareOutDir(target, () => true);
    assert.ok((await Deno.stat(target)).isDirectory);
    assert.deepEqual(await listNames(target), []);
  });
});

Deno.test("prepareOutDir removes only the files the predicate selects", async () => {
  await withTempDir(async (dir) => {
    const stale = /^(images|labels)-\d{5}\.npy$|^summary\.md$/;
    for (const f of ["images-00000.npy", "labels-00000.npy", "summary.md", "notes.txt", "x.npy"]) {
      await Deno.writeTextFile(`${dir}/${f}`, f);
    }
    // A directory whose name matches is not a file: kept, with its contents.
    await Deno.mkdir(`${dir}/images-00001.npy`);
    await Deno.writeTextFile(`${dir}/images-00001.npy/inner`, "keep");
    const asked: string[] = [];
    await prepareOutDir(dir, (name) => {
      asked.push(name);
      return stale.test(name);
    });
    assert.deepEqual(await listNames(dir), ["images-00001.npy", "notes.txt", "x.npy"]);
    assert.equal(await Deno.readTextFile(`${dir}/notes.txt`), "notes.txt");
    assert.equal(await Deno.readTextFile(`${dir}/images-00001.npy/inner`), "keep");
    assert.ok(!asked.includes("images-00001.npy"), "directories are not offered to the predicate");
  });
});

Deno.test("prepareOutDir on a path that is a file throws a SiaError naming it", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/file`, "x");
    await rejectsNaming(prepareOutDir(`${dir}/file`, () => true), `${dir}/file`);
    await rejectsNaming(prepareOutDir(`${dir}/file/sub`, () => true), `${dir}/file/sub`);
    assert.equal(await Deno.readTextFile(`${dir}/file`), "x");
  });
});

Deno.test("atomicWriteAll: files that belong together appear together or not at all", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bytes = Uint8Array.of(1, 2, 3);
    await atomicWriteAll([{ path: `${dir}/a`, bytes }, { path: `${dir}/b`, bytes }]);
    assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort(), [
      "a",
      "b",
    ]);
    // The second file's directory does not exist: the first must not appear either.
    await assert.rejects(
      () => atomicWriteAll([{ path: `${dir}/c`, bytes }, { path: `${dir}/missing/d`, bytes }]),
      (e) => e instanceof SiaError && e.message.startsWith(`${dir}/missing/d: could not write`),
    );
    assert.deepEqual((await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort(), [
      "a",
      "b",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
