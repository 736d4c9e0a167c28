"""The ``artifactio`` command line: every command on local disks, S3 (SeaweedFS) and GCS.

Most cases call :func:`artifactio.cli.main` in-process and read what it printed;
a few run ``python -m artifactio`` as a real process, for exit statuses, the
absence of tracebacks, and Ctrl-C.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from _s3_fixtures import BUCKET, key_prefix, keys_below, objects_below, pending_uploads
from artifactio.cli import main
from artifactio.cli._output import ProgressLine, human_size
from artifactio.cli._parser import Endpoints, build_parser, parse_endpoint, parse_size
from artifactio.transfer import TransferProgress

if TYPE_CHECKING:
    from pathlib import Path

    from artifactio.embedded import FakeGCSServer, SeaweedFS

REPORT_FIELDS = {"transferred", "skipped", "failed", "bytes", "elapsed", "failures"}
TREE = {
    "a.txt": b"alpha\n",
    "models/w.bin": bytes(range(256)) * 40,
    "models/cache/tmp.bin": b"scratch",
    "notes/readme.md": b"# notes\n",
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)``: the exit status, stdout and stderr."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def make_tree(root: Path, files: dict[str, bytes] = TREE) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def tree_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "src")


# ------------------------------------------------------------------ pure parts


@pytest.mark.parametrize(
    ("text", "size"),
    [("1048576", 1048576), ("8M", 8 * 2**20), ("64MiB", 64 * 2**20), ("512kb", 512 * 1024),
     ("1.5G", 3 * 2**29), ("7B", 7)],
)  # fmt: skip
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "12Q", "-1", "0", "1.5", "M", "8 MiBs"])
def test_bad_sizes(text: str) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_progress_line_redraws_in_place() -> None:
    stream = io.StringIO()
    line = ProgressLine(stream)
    first = TransferProgress(files_done=1, files_total=4, bytes_done=1024, bytes_total=4096)
    assert line.render(first, 1.0) == "1/4+ files  1.0 KiB/4.0 KiB+  1.0 KiB/s  ETA ?"
    done = TransferProgress(4, 4, 4096, 4096, listing_done=True, failed=1)
    assert line.render(done, 2.0) == "4/4 files  4.0 KiB/4.0 KiB  2.0 KiB/s  ETA 0:00  1 failed"
    half = TransferProgress(2, 4, 2048 * 1024, 4096 * 1024, listing_done=True)
    assert "ETA 0:10" in line.render(half, 10.0)
    line.draw("a longer line")
    line.draw("short")
    line.clear()
    assert stream.getvalue() == "\ra longer line\rshort        \r" + " " * 5 + "\r"
    assert human_size(512) == "512 B"
    assert human_size(3 * 2**30) == "3.0 GiB"


# ------------------------------------------------------------------ local transfers


def test_cp_recursive_then_sync_twice(
    capsys: pytest.CaptureFixture[str], src: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "dst"
    status, out, err = run(capsys, "cp", "-r", str(src), str(dst))
    assert (status, out) == (0, "")
    assert tree_of(dst) == TREE
    assert err.count("\n") == 1
    assert err.startswith("artifactio cp: transferred 4 files")

    (src / "a.txt").write_bytes(b"changed, and longer\n")
    os.utime(src / "a.txt", (time.time() + 5, time.time() + 5))
    status, out, err = run(capsys, "sync", "--json", str(src), str(dst))
    report = json.loads(out)
    assert status == 0
    assert set(report) == REPORT_FIELDS
    assert (report["transferred"], report["skipped"], report["failed"]) == (1, 3, 0)
    assert "artifactio sync: transferred 1 files" in err

    status, out, _ = run(capsys, "sync", "--json", "--checksum", str(src), str(dst))
    assert (status, json.loads(out)["transferred"], json.loads(out)["skipped"]) == (0, 0, 4)


def test_single_file_into_directory_and_relative_paths(
    capsys: pytest.CaptureFixture[str], src: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(src)
    (src / "out").mkdir()
    assert run(capsys, "cp", "a.txt", "out/")[0] == 0
    assert (src / "out" / "a.txt").read_bytes() == b"alpha\n"


def test_dry_run_writes_nothing(
    capsys: pytest.CaptureFixture[str], src: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "dst"
    status, out, err = run(capsys, "cp", "-r", "--dry-run", "--json", str(src), str(dst))
    assert status == 0
    assert json.loads(out)["transferred"] == 4
    assert "would transfer 4 files" in err
    assert not dst.exists()

    assert f"would copy {src}/a.txt -> {dst}/a.txt (new)" in err.splitlines()  # --json: stderr
    assert err.count("would copy ") == 4

    make_tree(dst, {"stale.txt": b"x"})
    status, out, err = run(capsys, "sync", "--delete", "--dry-run", str(src), str(dst))
    assert status == 0
    assert "would delete 1" in err
    assert f"would delete {dst}/stale.txt (not in the source)" in out.splitlines()
    assert out.count("would copy ") == 4
    assert tree_of(dst) == {"stale.txt": b"x"}
    assert run(capsys, "sync", "--delete", str(src), str(dst))[0] == 0
    assert tree_of(dst) == TREE


def test_include_exclude(capsys: pytest.CaptureFixture[str], src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    argv = ["cp", "-r", "--include", "models", "--include", "*.txt", "--exclude", "**/cache/"]
    assert run(capsys, *argv, str(src), str(dst))[0] == 0
    assert set(tree_of(dst)) == {"a.txt", "models/w.bin"}
    # The filters of ls and du are relative to the URI too.
    assert run(capsys, "ls", "-r", "--exclude", "**/*.bin", str(src))[1] == (
        "a.txt\nnotes/readme.md\n"
    )
    out = run(capsys, "du", "--json", "--include", "models", str(src))[1]
    assert json.loads(out)["files"] == 2


def test_progress_on_a_terminal(
    capsys: pytest.CaptureFixture[str],
    src: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    status, _, err = run(capsys, "cp", "-r", str(src), str(tmp_path / "dst"))
    assert status == 0
    progress, summary = err.rsplit("\r", 1)
    assert "4/4 files" in progress
    assert summary.startswith("artifactio cp: transferred 4 files")
    # With --json, no live line: only the summary.
    status, _, err = run(capsys, "cp", "-r", "--json", str(src), str(tmp_path / "dst2"))
    assert "\r" not in err


def test_failures_are_listed(capsys: pytest.CaptureFixture[str], src: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "models").write_bytes(b"a file where a directory should be")
    status, out, err = run(capsys, "cp", "-r", "--json", str(src), str(dst))
    report = json.loads(out)
    assert status == 1
    assert report["failed"] >= 1
    failure = report["failures"][0]
    assert f"{failure['path']}: " in err
    assert "Traceback" not in err


# ------------------------------------------------------------------ looking around


def test_ls(capsys: pytest.CaptureFixture[str], src: Path) -> None:
    assert run(capsys, "ls", str(src)) == (0, "a.txt\nmodels/\nnotes/\n", "")
    recursive = run(capsys, "ls", "-r", str(src))[1].splitlines()
    assert recursive == ["a.txt", "models/cache/tmp.bin", "models/w.bin", "notes/readme.md"]
    long = run(capsys, "ls", "-l", str(src))[1].splitlines()
    assert long[0].split()[0] == "6"
    assert long[0].endswith("a.txt")
    assert long[1].split()[0] == "DIR"
    entries = json.loads(run(capsys, "ls", "--json", "-r", str(src / "models"))[1])
    assert [(e["name"], e["size"], e["is_dir"]) for e in entries] == [
        ("cache/tmp.bin", 7, False),
        ("w.bin", 10240, False),
    ]
    assert entries[1]["path"] == f"{src}/models/w.bin"
    assert run(capsys, "ls", str(src / "a.txt"))[1] == "a.txt\n"


def test_du_stat_cat(capsys: pytest.CaptureFixture[str], src: Path) -> None:
    total = sum(len(data) for data in TREE.values())
    status, out, _ = run(capsys, "du", str(src))
    assert status == 0
    assert out.split("\t")[0] == str(total)
    assert out.rstrip().endswith(f"4 files\t{src}")
    assert json.loads(run(capsys, "du", "--json", str(src))[1]) == {
        "path": str(src),
        "bytes": total,
        "files": 4,
    }
    info = json.loads(run(capsys, "stat", "--json", str(src / "a.txt"))[1])
    assert (info["path"], info["size"], info["is_dir"]) == (f"{src}/a.txt", 6, False)
    text = run(capsys, "stat", str(src / "models"))[1]
    assert "type: directory" in text
    assert run(capsys, "cat", str(src / "a.txt"))[1] == "alpha\n"


def test_rm(capsys: pytest.CaptureFixture[str], src: Path) -> None:
    status, out, _ = run(capsys, "rm", "-r", "--dry-run", str(src / "models"))
    assert status == 0
    assert out.splitlines() == [
        f"would remove {src}/models/cache/tmp.bin",
        f"would remove {src}/models/w.bin",
        f"would remove {src}/models/",
    ]
    assert tree_of(src) == TREE
    status, _, err = run(capsys, "rm", str(src / "models"))
    assert status == 1
    assert err == f"artifactio rm: {src}/models is a directory (use -r)\n"
    status, out, _ = run(capsys, "rm", "-r", "--json", "--include", "**/*.bin", str(src / "models"))
    assert json.loads(out)["removed"] == 2
    assert run(capsys, "rm", str(src / "a.txt")) == (0, "", "")
    assert run(capsys, "rm", "-r", str(src / "notes")) == (0, "", "")
    assert tree_of(src) == {}


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["cp", "{tmp}/missing", "{tmp}/dst"], 1, "no such file or directory"),
        (["ls", "{tmp}/missing"], 1, "no such file or directory"),
        (["cat", "{tmp}"], 1, "s a directory"),
        (["cp", "{tmp}", "{tmp}/../elsewhere"], 1, "recursive"),
        (["cp", "ftp://host/x", "{tmp}/dst"], 2, "no backend for ftp://"),
        (["cp", "--part-size", "12Q", "a", "b"], 2, "--part-size: expected a size"),
        (["cp", "--concurrency", "0", "a", "b"], 2, "--concurrency: expected a whole number"),
        (["sync", "--checksum", "--size-only", "a", "b"], 2, "not allowed with"),
        (["cp", "-r", "--include", "../x", "{tmp}", "{tmp}/dst"], 2, "climbs above"),
        (["ls", "gs://Bad_Bucket/x"], 2, "not a valid bucket name"),
        (["frob"], 2, "invalid choice"),
        (["cp", "only-one"], 2, "required: DST"),
    ],
)
def test_errors_are_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    argv: list[str],
    status: int,
    message: str,
) -> None:
    got, out, err = run(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert got == status
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("artifactio")
    assert message in err


@pytest.mark.parametrize("uri", ["s3:/bucket/x", "gs:bucket/x", "GCS:/b", "memory:/m", "file:/x"])
def test_a_mistyped_uri_is_refused_not_taken_for_a_local_path(
    capsys: pytest.CaptureFixture[str],
    src: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    uri: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    scheme = uri.partition(":")[0].lower()
    for argv in (["cp", "-r", str(src), uri], ["sync", str(src), uri], ["ls", uri]):
        status, out, err = run(capsys, *argv)
        assert (status, out) == (2, "")
        assert err.count("\n") == 1
        assert f"{scheme}: without // is not a URI: write {scheme}://" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]  # nothing written locally
    # Spelled as a local path, or as a file URI, it is one.
    assert run(capsys, "cp", "-r", str(src), f"./{scheme}:x")[0] == 0
    assert tree_of(tmp_path / f"{scheme}:x") == TREE
    assert run(capsys, "ls", f"file://{src}")[1] == "a.txt\nmodels/\nnotes/\n"


def test_option_values_are_never_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "pa55word-" + uuid.uuid4().hex
    argv = ["ls", "--endpoint-url", f"ftp://user:{secret}@127.0.0.1", "s3://bucket/x"]
    status, _, err = run(capsys, *argv)
    assert status == 2
    assert "--endpoint-url" in err
    assert secret not in err
    status, _, err = run(capsys, "cp", "--part-size", secret, "a", "b")
    assert status == 2
    assert secret not in err


# ------------------------------------------------------------------ endpoints


@pytest.mark.parametrize(
    ("text", "scheme", "url"),
    [
        ("http://127.0.0.1:8333", None, "http://127.0.0.1:8333"),
        ("s3=http://127.0.0.1:8333", "s3", "http://127.0.0.1:8333"),
        ("GS=https://storage.example.com", "gs", "https://storage.example.com"),
        ("gcs=http://localhost:4443/", "gs", "http://localhost:4443/"),
    ],
)
def test_endpoint_values(text: str, scheme: str | None, url: str) -> None:
    assert parse_endpoint(text) == (scheme, url)


def test_endpoints_by_scheme() -> None:
    args = build_parser().parse_args(
        ["ls", "--endpoint-url", "http://a:1", "--endpoint-url", "gcs=http://g:2", "gs://b/x"]
    )
    endpoints = args.endpoint_url
    assert isinstance(endpoints, Endpoints)
    assert (endpoints.url_for("gs"), endpoints.url_for("s3")) == ("http://g:2", "http://a:1")
    assert build_parser().parse_args(["ls", "gs://b/x"]).endpoint_url is None


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (["azure=http://127.0.0.1:1"], "the scheme before '=' must be s3, gs or gcs"),
        (["s3=http://127.0.0.1:1", "s3=http://127.0.0.1:2"], "s3= is given twice"),
        (["gs=http://127.0.0.1:1", "GCS=http://127.0.0.1:2"], "gs= (or gcs=) is given twice"),
        (["http://127.0.0.1:1", "http://127.0.0.1:2"], "a URL without SCHEME= is given twice"),
        (["127.0.0.1:8333"], "must start with http:// or https://"),
        (["s3=127.0.0.1:8333"], "must start with http:// or https://"),
        (["s3://bucket"], "must start with http:// or https://"),
        (["gs="], "must start with http:// or https://"),
        (["http://127.0.0.1:99999"], "its host or port cannot be read"),
        (["s3=http://127.0.0.1:0"], "its port is 0"),
        (["http://bad host:1"], "white space"),
        (["http://127.0.0.1:1?x=1"], "a query"),
    ],
)
def test_bad_endpoints_are_usage_errors(
    capsys: pytest.CaptureFixture[str], given: list[str], message: str
) -> None:
    argv = [arg for url in given for arg in ("--endpoint-url", url)]
    status, out, err = run(capsys, "ls", *argv, "s3://bucket/x")
    assert (status, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith("artifactio ls: argument --endpoint-url: ")
    assert message in err
    for text in given:
        value = text.split("=", 1)[-1]
        assert not value or value not in err


@pytest.mark.parametrize(
    "ends",
    [("s3://bkt/x", "gs://bkt/y"), ("gcs://bkt/x", "s3://bkt/y/"), ("s3://bkt", "GS://bkt/y")],
)
def test_one_endpoint_for_two_schemes_is_refused(
    capsys: pytest.CaptureFixture[str], ends: tuple[str, str]
) -> None:
    # Refused before any request: nothing listens on port 9 (it would fail with status 1).
    status, out, err = run(capsys, "cp", "-r", "--endpoint-url", "http://127.0.0.1:9", *ends)
    assert (status, out) == (2, "")
    assert err == (
        "artifactio cp: --endpoint-url: one URL for both the gs:// and the s3:// ends; "
        "give each its own: --endpoint-url gs=URL --endpoint-url s3=URL\n"
    )


# ------------------------------------------------------------------ S3 and GCS


@pytest.fixture
def aws_env(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> str:
    """Credentials in the environment, as a user would set them; the endpoint to pass."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", seaweedfs.region)
    return seaweedfs.endpoint_url


@pytest.fixture
def s3_uri(aws_env: str, s3_root: str) -> str:
    """A fresh ``s3://`` root (``s3_root``), with credentials in the environment."""
    return s3_root


@pytest.mark.s3
def test_s3_round_trip(
    capsys: pytest.CaptureFixture[str], aws_env: str, s3_uri: str, src: Path, tmp_path: Path
) -> None:
    ep = ["--endpoint-url", aws_env]
    status, out, _ = run(capsys, "cp", "-r", "--json", *ep, str(src), s3_uri + "/m")
    assert (status, json.loads(out)["transferred"]) == (0, 4)
    status, out, _ = run(capsys, "sync", "--json", *ep, str(src), s3_uri + "/m")
    assert (status, json.loads(out)["transferred"], json.loads(out)["skipped"]) == (0, 0, 4)
    # Inside one bucket (server-side), with a part size that S3 accepts.
    status, out, _ = run(
        capsys, "cp", "-r", "--part-size", "5MiB", *ep, s3_uri + "/m", s3_uri + "/copy"
    )
    assert status == 0
    assert run(capsys, "ls", *ep, s3_uri + "/copy")[1] == "a.txt\nmodels/\nnotes/\n"
    assert json.loads(run(capsys, "du", "--json", *ep, s3_uri + "/copy")[1])["files"] == 4
    assert run(capsys, "cat", *ep, s3_uri + "/copy/a.txt")[1] == "alpha\n"
    assert json.loads(run(capsys, "stat", "--json", *ep, s3_uri + "/copy/a.txt")[1])["size"] == 6
    assert run(capsys, "cp", "-r", *ep, s3_uri + "/copy", str(tmp_path / "back"))[0] == 0
    assert tree_of(tmp_path / "back") == TREE
    assert run(capsys, "rm", "-r", *ep, s3_uri)[0] == 0
    assert run(capsys, "ls", *ep, s3_uri)[0] == 1


@pytest.mark.s3
def test_s3_missing_bucket_and_bad_credentials(
    capsys: pytest.CaptureFixture[str],
    aws_env: str,
    src: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ep = ["--endpoint-url", aws_env]
    status, _, err = run(capsys, "ls", *ep, "s3://no-such-bucket-cli/x")
    assert status == 1
    assert err.count("\n") == 1
    assert "no-such-bucket-cli" in err
    secret = "wrong-" + uuid.uuid4().hex
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    status, _, err = run(capsys, "ls", *ep, f"s3://{BUCKET}/x")
    assert status == 1
    assert err.count("\n") == 1
    assert secret not in err


@pytest.mark.gcs
def test_gcs_sync_twice(
    capsys: pytest.CaptureFixture[str], fake_gcs_server: FakeGCSServer, gcs_root: str, src: Path
) -> None:
    ep = ["--endpoint-url", fake_gcs_server.url]
    status, out, _ = run(capsys, "sync", "--json", *ep, str(src), gcs_root)
    assert (status, json.loads(out)["transferred"]) == (0, 4)
    status, out, _ = run(capsys, "sync", "--json", *ep, str(src), gcs_root)
    assert (status, json.loads(out)["transferred"]) == (0, 0)
    assert run(capsys, "ls", "-r", *ep, gcs_root)[1].splitlines() == sorted(TREE)
    assert run(capsys, "cat", *ep, gcs_root + "/notes/readme.md")[1] == "# notes\n"


@pytest.mark.s3
@pytest.mark.gcs
def test_endpoints_per_scheme_reach_their_own_servers(
    capsys: pytest.CaptureFixture[str],
    aws_env: str,
    s3_uri: str,
    raw_s3: Any,
    fake_gcs_server: FakeGCSServer,
    gcs_root: str,
    src: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    s3_ep = ["--endpoint-url", f"s3={aws_env}"]
    gs_ep = ["--endpoint-url", f"gs={fake_gcs_server.url}"]
    assert run(capsys, "cp", "-r", "--endpoint-url", aws_env, str(src), s3_uri + "/m")[0] == 0

    # S3 (SeaweedFS) -> GCS (fake-gcs-server): each end talks to its own server.
    status, out, err = run(capsys, "cp", "-r", "--json", *gs_ep, *s3_ep, s3_uri + "/m", gcs_root)
    assert (status, json.loads(out)["transferred"]) == (0, 4), err
    assert run(capsys, "ls", "-r", *gs_ep, gcs_root)[1].splitlines() == sorted(TREE)
    assert run(capsys, "cat", *gs_ep, gcs_root + "/notes/readme.md")[1] == "# notes\n"

    # GCS -> S3 with gcs= and a plain URL: the plain one goes to the end without its own.
    back = s3_uri + "/back"
    gcs_ep = ["--endpoint-url", f"gcs={fake_gcs_server.url}", "--endpoint-url", aws_env]
    status, out, err = run(capsys, "sync", "--json", *gcs_ep, gcs_root, back)
    assert (status, json.loads(out)["transferred"]) == (0, 4), err
    prefix = key_prefix(back)
    for rel, data in TREE.items():
        assert raw_s3.get_object(Bucket=BUCKET, Key=prefix + rel)["Body"].read() == data

    # The same two ends with one plain URL: refused, nothing sent.
    status, out, err = run(capsys, "sync", "--endpoint-url", aws_env, gcs_root, back)
    assert (status, out) == (2, "")
    assert "--endpoint-url s3=URL" in err


# ------------------------------------------------------------------ real processes


def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "artifactio", *argv],
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def test_subprocess_statuses(src: Path, tmp_path: Path) -> None:
    done = _cli("cp", "-r", "--json", str(src), str(tmp_path / "dst"))
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == REPORT_FIELDS
    assert _cli("cat", str(tmp_path / "dst" / "models" / "w.bin")).stdout == TREE["models/w.bin"]
    for argv, status in [
        (["cp", str(tmp_path / "missing"), str(tmp_path / "x")], 1),
        (["ls", "nope://x"], 2),
        (["cp", "--part-size", "big", "a", "b"], 2),
        ([], 2),
    ]:
        failed = _cli(*argv)
        assert failed.returncode == status, failed.stderr
        assert b"Traceback" not in failed.stderr
        assert failed.stderr.count(b"\n") == 1
    assert _cli("--help").returncode == 0


@pytest.mark.s3
def test_ctrl_c_cancels_cleanly(aws_env: str, s3_uri: str, tmp_path: Path, raw_s3: Any) -> None:
    big = make_tree(tmp_path / "big", {f"f{i:03d}.bin": os.urandom(256 * 1024) for i in range(200)})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "artifactio",
            "cp",
            "-r",
            "--concurrency",
            "2",
            "--endpoint-url",
            aws_env,
            str(big),
            s3_uri,
        ],
        stderr=subprocess.PIPE,
        env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            if len(keys_below(raw_s3, s3_uri)) >= 2:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.decode().splitlines()[-1] == "artifactio cp: interrupted"
    assert b"Traceback" not in err
    assert pending_uploads(raw_s3, s3_uri) == []
    listed = [o for _, o in objects_below(raw_s3, s3_uri)]
    assert all(o["Size"] == 256 * 1024 for o in listed)
    assert len(listed) < 200
