#!/usr/bin/env python3
"""Reads a sia stream (deno task run serve) with numpy and the standard library's HTTP client.

    python3 examples/consume_numpy.py "http://127.0.0.1:8470/v1/stream?rank=0&world=1&epoch=0" [--out DIR] [--token-file F]

prints one JSON line per frame (its metadata and shapes) and, with --out, saves each frame's
arrays as DIR/<epoch>-<index>-<name>.npy. `frames` is the whole client: a frame is one safetensors
blob (8-byte little-endian header length, JSON header, raw tensors), and a stream is frames back
to back, so it reads the length, the header, then the header's largest end offset of data.
"""
import argparse, json, os, urllib.request
import numpy as np

DTYPES = {"F32": "<f4", "I32": "<i4", "U8": "u1"}


def frames(url, token=None):
    """Yields (metadata, {name: read-only numpy array}) for each frame of a response body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as body:
        while head := body.read(8):
            header = json.loads(body.read(int.from_bytes(head, "little")))  # cut short: ValueError
            metadata = header.pop("__metadata__")
            size = max(t["data_offsets"][1] for t in header.values())
            if len(head) < 8 or len(data := body.read(size)) < size:
                raise EOFError(f"stream ended inside frame {metadata.get('index')}")
            yield metadata, {
                name: np.frombuffer(data, DTYPES[t["dtype"]], int(np.prod(t["shape"])),
                                    t["data_offsets"][0]).reshape(t["shape"])
                for name, t in header.items()
            }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--out")
    parser.add_argument("--token-file")
    args = parser.parse_args()
    token = open(args.token_file).read().strip() if args.token_file else None
    for metadata, arrays in frames(args.url, token):
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            for name, array in arrays.items():
                np.save(f"{args.out}/{metadata['epoch']}-{metadata['index']}-{name}.npy", array)
        shapes = {name: list(a.shape) for name, a in arrays.items()}
        print(json.dumps({**metadata, "shapes": shapes}), flush=True)


if __name__ == "__main__":
    main()
