"""Reads WebDataset shards with the `webdataset` package from PyPI (a loader we did not write)
and prints one JSON object: every sample's key, the extensions it holds, the step in its
transition JSON, and whether its PNG starts with the PNG signature."""
import json
import sys

import webdataset as wds


def main(paths):
    samples = []
    for sample in wds.WebDataset(paths, shardshuffle=False):
        transition = json.loads(sample["json"])
        png = sample.get("png")
        samples.append({"key": sample["__key__"], "extensions": sorted(k for k in sample if not k.startswith("__")),
                        "step": transition["step"], "png": png is not None and png[:8] == b"\x89PNG\r\n\x1a\n",
                        "source": json.loads(sample["source.json"]) if "source.json" in sample else None})
    print(json.dumps({"samples": samples}))


if __name__ == "__main__":
    main(sys.argv[1:])
