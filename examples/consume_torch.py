#!/usr/bin/env python3
"""A PyTorch IterableDataset over a sia stream, split among DDP ranks and DataLoader workers, with
state_dict() / load_state_dict() holding the resume token, and a short training loop on it.

    python3 examples/consume_torch.py http://127.0.0.1:8470 --job default --epochs 2 --workers 2 \\
        --state state.json [--rank R --world W] [--batch B] [--out DIR] [--token-file F]

Each rank r of W reads its own share of every epoch (rank and world default to torch.distributed's
when it is initialised). DataLoader worker w of n streams indices from + w, from + w + n, ...
(step=n); the loader takes one batch from each worker in turn, so the loop sees the rank's
batches in order 0, 1, 2, ... whatever n is, and the resume token of the last batch it saw says
exactly where to continue. The loop saves that state after every step; rerun it after a crash and
it receives exactly the batches it had not trained on.
"""
import argparse, json, os, sys, time, urllib.parse

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from consume_numpy import frames  # noqa: E402


class SiaStream(IterableDataset):
    """One epoch of a rank's share per iteration: dicts of images, labels, ids, provenance
    (tensors), index (int) and resume (the token of the next batch)."""

    def __init__(self, url, job="default", batch=None, epoch=0, rank=None, world=None,
                 layout="nhwc", token=None):
        super().__init__()
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.url, self.token, self.epoch = url.rstrip("/"), token, epoch
        self.key = {"job": job, "layout": layout,
                    "rank": rank if rank is not None else (torch.distributed.get_rank() if distributed else 0),
                    "world": world if world is not None else (torch.distributed.get_world_size() if distributed else 1)}
        if batch is not None:
            self.key["batch"] = batch
        self.resume = None

    def set_epoch(self, epoch):
        self.epoch = epoch

    def state_dict(self):
        return {"epoch": self.epoch, "resume": self.resume}

    def load_state_dict(self, state):
        self.epoch, self.resume = state["epoch"], state["resume"]

    def _query(self):
        if self.resume:
            query = dict(urllib.parse.parse_qsl(self.resume))
            if int(query["epoch"]) == self.epoch:
                mine = {k: str(v) for k, v in self.key.items()}
                if any(query.get(k) != v for k, v in mine.items()):
                    raise ValueError(f"resume token {self.resume} is not this stream's ({mine})")
                return query
        return {**self.key, "epoch": self.epoch, "from": 0}

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        query = self._query()
        query.update({"from": int(query["from"]) + worker, "step": workers})
        url = f"{self.url}/v1/stream?{urllib.parse.urlencode(query)}"
        for metadata, arrays in frames(url, self.token):
            batch = {name: torch.from_numpy(a.copy()) for name, a in arrays.items()}
            batch.update(index=int(metadata["index"]), resume=metadata["resume"])
            self.resume = metadata["resume"]
            yield batch


class SiaLoader(DataLoader):
    """A DataLoader over a SiaStream that records each batch's resume token in the main process,
    so dataset.state_dict() is right with worker processes too."""

    def __init__(self, dataset, **options):
        super().__init__(dataset, batch_size=None, **options)

    def __iter__(self):
        for batch in super().__iter__():
            self.dataset.resume = batch["resume"]
            yield batch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--job", default="default")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rank", type=int)
    parser.add_argument("--world", type=int)
    parser.add_argument("--state", help="checkpoint (data position, model, optimizer), saved every step")
    parser.add_argument("--out", help="save each batch's arrays as DIR/<epoch>-<index>-<name>.npy")
    parser.add_argument("--token-file")
    parser.add_argument("--step-seconds", type=float, default=0, help="extra time per step (a bigger model)")
    args = parser.parse_args()
    token = open(args.token_file).read().strip() if args.token_file else None
    torch.manual_seed(0)
    dataset = SiaStream(args.url, args.job, args.batch, rank=args.rank, world=args.world, token=token)
    checkpoint = torch.load(args.state) if args.state and os.path.exists(args.state) else None
    if checkpoint:
        dataset.load_state_dict(checkpoint["data"])
    loader = SiaLoader(dataset, num_workers=args.workers)
    model, optimizer = None, None
    for epoch in range(dataset.epoch, args.epochs):
        dataset.set_epoch(epoch)
        for batch in loader:
            x, y = batch["images"].flatten(1), batch["labels"].long()
            if model is None:
                model = torch.nn.Linear(x.shape[1], 10)
                optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
                if checkpoint and checkpoint["model"]:
                    model.load_state_dict(checkpoint["model"])
                    optimizer.load_state_dict(checkpoint["optimizer"])
            loss = torch.nn.functional.cross_entropy(model(x), y.clamp(min=0))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            time.sleep(args.step_seconds)
            if args.out:
                os.makedirs(args.out, exist_ok=True)
                for name in ("images", "labels", "ids", "provenance"):
                    np.save(f"{args.out}/{epoch}-{batch['index']}-{name}.npy", batch[name].numpy())
            if args.state:
                torch.save({"data": dataset.state_dict(), "model": model.state_dict(),
                            "optimizer": optimizer.state_dict()}, args.state + ".tmp")
                os.replace(args.state + ".tmp", args.state)
            print(json.dumps({"epoch": epoch, "index": batch["index"], "loss": loss.item()}), flush=True)


if __name__ == "__main__":
    main()
