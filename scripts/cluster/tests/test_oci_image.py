"""scripts/cluster/oci_image.py: an image assembled from a tiny root file system is a valid OCI
archive that containerd can import (python3 -m unittest discover scripts/cluster/tests)."""

import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))
import oci_image  # noqa: E402


def run(*args):
    return subprocess.run([sys.executable, str(HERE / "oci_image.py"), *args],
                          capture_output=True, text=True)


class Image(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)
        root = self.dir / "rootfs"
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "os-release").write_text("ID=tiny\n")
        self.rootfs = self.dir / "rootfs.tar"
        with tarfile.open(self.rootfs, "w") as tar:
            tar.add(root, arcname=".")
        self.binary = self.dir / "service"
        self.binary.write_bytes(b"#!/bin/sh\necho hello\n")

    def tearDown(self):
        self.tmp.cleanup()

    def build(self, *extra):
        out = self.dir / "image.tar"
        done = run("--name", "book-rental-fleet/rental:dev", "--out", str(out),
                   "--layer", str(self.rootfs),
                   "--file", f"{self.binary}:/usr/local/bin/service",
                   "--entrypoint", '["/usr/local/bin/service"]', "--user", "65532:65532",
                   "--env", "OPS_PORT=9464", "--port", "8080", "--stop-signal", "SIGINT", *extra)
        self.assertEqual(done.returncode, 0, done.stderr)
        return tarfile.open(out)

    def blob(self, archive, digest):
        algorithm, hexdigest = digest.split(":")
        self.assertEqual(algorithm, "sha256")
        data = archive.extractfile(f"blobs/sha256/{hexdigest}").read()
        self.assertEqual(hashlib.sha256(data).hexdigest(), hexdigest, "a blob's name is its digest")
        return data

    def test_an_oci_layout_named_as_the_kubelet_asks_for_it(self):
        with self.build() as archive:
            self.assertEqual(json.load(archive.extractfile("oci-layout")),
                             {"imageLayoutVersion": "1.0.0"})
            index = json.load(archive.extractfile("index.json"))
            (entry,) = index["manifests"]
            self.assertEqual(entry["annotations"]["io.containerd.image.name"],
                             "docker.io/book-rental-fleet/rental:dev")
            manifest = json.loads(self.blob(archive, entry["digest"]))
            self.assertEqual(entry["size"], len(self.blob(archive, entry["digest"])))
            config = json.loads(self.blob(archive, manifest["config"]["digest"]))
            self.assertEqual(config["config"]["Entrypoint"], ["/usr/local/bin/service"])
            self.assertEqual(config["config"]["User"], "65532:65532")
            self.assertIn("OPS_PORT=9464", config["config"]["Env"])
            self.assertTrue(any(e.startswith("PATH=") for e in config["config"]["Env"]))
            self.assertEqual(config["config"]["ExposedPorts"], {"8080/tcp": {}})
            self.assertEqual(config["config"]["StopSignal"], "SIGINT")
            layers = [layer["digest"] for layer in manifest["layers"]]
            self.assertEqual(config["rootfs"]["diff_ids"], layers, "uncompressed: diff id = digest")
            self.assertEqual(len(layers), 2)
            base = tarfile.open(fileobj=io.BytesIO(self.blob(archive, layers[0])))
            self.assertIn("./etc/os-release", base.getnames())
            top = tarfile.open(fileobj=io.BytesIO(self.blob(archive, layers[1])))
            self.assertEqual(top.getnames(), ["usr", "usr/local", "usr/local/bin",
                                              "usr/local/bin/service"])
            service = top.getmember("usr/local/bin/service")
            self.assertEqual((service.mode, service.uid, service.mtime), (0o755, 0, 0))
            self.assertEqual(top.extractfile(service).read(), self.binary.read_bytes())

    def test_the_same_inputs_give_the_same_image(self):
        with self.build() as first:
            a = first.extractfile("index.json").read()
        with self.build() as second:
            b = second.extractfile("index.json").read()
        self.assertEqual(a, b)

    def test_bad_arguments_are_refused_with_a_reason(self):
        for args, reason in [
            (["--file", f"{self.binary}:relative/path"], "SRC:/DEST"),
            (["--file", f"{self.dir}/missing:/x"], "is not a file"),
            (["--layer", f"{self.dir}/missing.tar"], "no such file"),
            ([], "at least one --layer or --file"),
        ]:
            done = run("--name", "x:y", "--out", str(self.dir / "bad.tar"), *args)
            self.assertEqual(done.returncode, 2, args)
            self.assertIn(reason, done.stderr)
            self.assertFalse((self.dir / "bad.tar").exists())

    def test_short_names_are_docker_hub_names(self):
        self.assertEqual(oci_image.normalise("postgres:16"), "docker.io/library/postgres:16")
        self.assertEqual(oci_image.normalise("book-rental-fleet/siege:dev"),
                         "docker.io/book-rental-fleet/siege:dev")
        self.assertEqual(oci_image.normalise("registry.k8s.io/pause:3.10"),
                         "registry.k8s.io/pause:3.10")
        self.assertEqual(oci_image.normalise("localhost:5000/x"), "localhost:5000/x:latest")


if __name__ == "__main__":
    unittest.main()
