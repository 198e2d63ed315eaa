#!/usr/bin/env python3
"""Writes a container image as an OCI image-layout archive, without a registry or a daemon.

usage: oci_image.py --name REF --out ARCHIVE [--layer TAR | --file SRC:DEST[:MODE]]...
                    [--entrypoint JSON] [--cmd JSON] [--env K=V]... [--user U] [--workdir DIR]
                    [--port N]... [--stop-signal SIG]

Layers come in the order given: --layer is a tar file (a whole root file system, say), each
--file adds one file (root-owned, MODE in octal, 0755 by default) to a layer of the files that
follow it. Layers are stored uncompressed (containerd reads them as they are; no time goes on
compressing what never leaves this machine). The archive loads with
`ctr -n k8s.io images import ARCHIVE` under REF (docker.io/... for a short name, as the kubelet
resolves it). scripts/cluster.sh images writes every image of the fleet with it.
"""

import argparse
import hashlib
import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path

LAYER = "application/vnd.oci.image.layer.v1.tar"
CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def normalise(ref: str) -> str:
    """docker.io/library/postgres:16 for postgres:16, as the kubelet and containerd name it."""
    name, _, tag = ref.rpartition(":")
    if not name or "/" in tag:
        name, tag = ref, "latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return f"{name}:{tag}"


class Blobs:
    """The archive's blobs: small ones written to a scratch folder, layers read from where they
    are when the archive is written (a root file system's layer is hundreds of MB: not copied)."""

    def __init__(self, root: Path):
        self.dir = root / "blobs" / "sha256"
        self.dir.mkdir(parents=True)
        self.paths = {}  # hex digest -> the file holding that blob

    def add_file(self, path: Path) -> tuple[str, int]:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        hexdigest = digest.hexdigest()
        self.paths.setdefault(hexdigest, path)
        return f"sha256:{hexdigest}", path.stat().st_size

    def add_bytes(self, data: bytes) -> tuple[str, int]:
        hexdigest = hashlib.sha256(data).hexdigest()
        (self.dir / hexdigest).write_bytes(data)
        self.paths[hexdigest] = self.dir / hexdigest
        return f"sha256:{hexdigest}", len(data)


def files_layer(files: list[tuple[str, str, int]], out: Path) -> None:
    """A reproducible tar of FILES (source, destination, mode): fixed owner and time, and the
    folders above each destination."""
    dirs = set()
    for _, dest, _ in files:
        parent = Path(dest.lstrip("/")).parent
        while str(parent) != ".":
            dirs.add(str(parent))
            parent = parent.parent
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        for src, dest, mode in files:
            info = tarfile.TarInfo(dest.lstrip("/"))
            info.size, info.mode, info.mtime = os.path.getsize(src), mode, 0
            with open(src, "rb") as f:
                tar.addfile(info, f)


def parse_file(spec: str) -> tuple[str, str, int]:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
        raise argparse.ArgumentTypeError(f"--file {spec}: expected SRC:/DEST[:MODE]")
    if not os.path.isfile(parts[0]):
        raise argparse.ArgumentTypeError(f"--file {spec}: {parts[0]} is not a file")
    return parts[0], parts[1], int(parts[2], 8) if len(parts) == 3 else 0o755


def build(args: argparse.Namespace, layers: list) -> None:
    ref = normalise(args.name)
    with tempfile.TemporaryDirectory(prefix="oci-image-") as scratch:
        root = Path(scratch) / "layout"
        blobs = Blobs(root)
        descriptors, diff_ids = [], []
        for i, layer in enumerate(layers):
            if isinstance(layer, list):
                path = Path(scratch) / f"files-{i}.tar"
                files_layer(layer, path)
            else:
                path = Path(layer)
            digest, size = blobs.add_file(path)
            descriptors.append({"mediaType": LAYER, "digest": digest, "size": size})
            # Uncompressed: the layer's digest is its diff id.
            diff_ids.append(digest)
        config = {
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
                + args.env,
                "WorkingDir": args.workdir,
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
        # A PATH given with --env replaces the default one.
        if any(e.startswith("PATH=") for e in args.env):
            config["config"]["Env"] = args.env
        if args.entrypoint:
            config["config"]["Entrypoint"] = json.loads(args.entrypoint)
        if args.cmd:
            config["config"]["Cmd"] = json.loads(args.cmd)
        if args.user:
            config["config"]["User"] = args.user
        if args.port:
            config["config"]["ExposedPorts"] = {f"{p}/tcp": {} for p in args.port}
        if args.stop_signal:
            config["config"]["StopSignal"] = args.stop_signal
        config_digest, config_size = blobs.add_bytes(json.dumps(config, sort_keys=True).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": config_digest, "size": config_size},
            "layers": descriptors,
        }
        manifest_digest, manifest_size = blobs.add_bytes(
            json.dumps(manifest, sort_keys=True).encode())
        index = {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [{
                "mediaType": MANIFEST,
                "digest": manifest_digest,
                "size": manifest_size,
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": ref,
                    "org.opencontainers.image.ref.name": ref.rpartition(":")[2],
                },
            }],
        }
        (root / "index.json").write_text(json.dumps(index, sort_keys=True))
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            for name in ("oci-layout", "index.json"):
                tar.add(root / name, arcname=name, recursive=False)
            for hexdigest, path in sorted(blobs.paths.items()):
                tar.add(path, arcname=f"blobs/sha256/{hexdigest}", recursive=False)
        partial.replace(out)
    print(f"{ref} {manifest_digest} -> {out}")


class Layers(argparse.Action):
    """--layer and --file in the order given: a --file joins the files layer before it."""

    def __call__(self, parser, namespace, value, option_string=None):
        layers = getattr(namespace, "layers", None) or []
        if option_string == "--layer":
            if not os.path.isfile(value):
                parser.error(f"--layer {value}: no such file")
            layers.append(value)
        else:
            if not layers or not isinstance(layers[-1], list):
                layers.append([])
            layers[-1].append(value)
        namespace.layers = layers


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--layer", action=Layers, dest="layers")
    parser.add_argument("--file", action=Layers, dest="layers", type=parse_file)
    parser.add_argument("--entrypoint")
    parser.add_argument("--cmd")
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--user")
    parser.add_argument("--workdir", default="/")
    parser.add_argument("--port", action="append", type=int, default=[])
    parser.add_argument("--stop-signal", help="what the runtime stops the container with (SIGTERM)")
    args = parser.parse_args(argv)
    if not args.layers:
        parser.error("an image needs at least one --layer or --file")
    build(args, args.layers)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
