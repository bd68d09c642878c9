"""Pretrained weights (torchvision through torch.hub, timm through its own loader) and timm
backbones. Every test runs without a network: name lookups and connections beyond loopback fail
(the `offline` fixture), and the torch hub and Hugging Face caches are empty temp folders."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading

import pytest
import torch
import torchvision.models as tvm

import core.models as models
from core.errors import UserError
from core.models import build_model, check_model_name, new_model

RESNET18_FILE = "resnet18-f37072fd.pth"  # torchvision's own name; f37072fd is its SHA-256 prefix
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No route out, as on a machine without network, and empty weight caches under tmp_path."""
    real_lookup, real_connect = socket.getaddrinfo, socket.socket.connect

    def lookup(host, *args, **kwargs):
        if host not in LOOPBACK:
            raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known ({host}; blocked in tests)")
        return real_lookup(host, *args, **kwargs)

    def connect(sock, address):
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            raise OSError(101, f"Network is unreachable ({address[0]}; blocked in tests)")
        return real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # torch.hub.get_dir() reads it on each call
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    assert models.hub_checkpoints() == checkpoints  # fails loudly if someone called torch.hub.set_dir
    return checkpoints


@pytest.fixture
def hf_cache(monkeypatch, tmp_path):
    import huggingface_hub.constants as constants  # timm requires it, so it is always there
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path / "hf"


def _one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text
    return text


def test_imagenet_offline_is_one_line_naming_the_file_and_folder(offline):
    with pytest.raises(UserError) as err:
        build_model("resnet18", 18, "imagenet")
    text = _one_line(err)
    assert RESNET18_FILE in text and f"{offline}/" in text and "--weights none" in text
    assert not offline.exists() or not any(offline.iterdir())  # nothing left that looks like a checkpoint


def test_auto_offline_trains_from_scratch_and_says_why(offline):
    model, note = build_model("resnet18", 18, "auto", head="factorized")
    assert "\n" not in note
    assert "training from scratch" in note and RESNET18_FILE in note and f"{offline}/" in note
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 18)


@pytest.mark.parametrize("weights, head", [("imagenet", "flat"), ("auto", "factorized")])
def test_a_checkpoint_in_the_hub_cache_is_loaded_without_the_network(offline, weights, head):
    # Older torchvision files carry no BatchNorm num_batches_tracked counters: leave them out too.
    saved = {k: v for k, v in new_model("resnet18", 1000).state_dict().items() if "num_batches" not in k}
    offline.mkdir(parents=True)
    torch.save(saved, offline / RESNET18_FILE)
    model, note = build_model("resnet18", 18, weights, head)
    assert f"from {offline / RESNET18_FILE}" in note and "found in the torch hub cache" in note
    assert "2 head tensor(s) left new" in note
    got = model.state_dict()
    for key, value in saved.items():
        if not key.startswith("fc."):
            assert torch.equal(got[key], value), key


class _Server:
    """A local HTTP server (loopback only) that answers every GET with ``body``, or that accepts
    connections and never answers (``body=None``): a stalled download."""

    def __init__(self, body: bytes | None, declared: int | None = None):
        self.body, self.declared = body, declared
        if body is None:
            self.sock = socket.create_server(("127.0.0.1", 0))  # listening, never accepting
            self.port = self.sock.getsockname()[1]
            self.timer = threading.Timer(5.0, self.sock.close)  # never hold a test longer than this
            self.timer.start()
            return
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Length", str(outer.declared or len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        if self.body is None:
            self.timer.cancel()
            self.sock.close()
        else:
            self.httpd.shutdown()
            self.httpd.server_close()


@pytest.mark.parametrize("kind", ["wrong_hash", "cut_short", "stalled"])
def test_a_failed_download_leaves_no_file_behind(offline, monkeypatch, kind):
    body = {"wrong_hash": b"not resnet18 weights" * 100, "cut_short": b"x" * 1000, "stalled": None}[kind]
    server = _Server(body, declared=100_000 if kind == "cut_short" else None)
    url = f"http://127.0.0.1:{server.port}/{RESNET18_FILE}"

    class LocalWeights(tvm.WeightsEnum):  # torchvision's own kind of enum, pointed at the local server
        IMAGENET1K_V1 = tvm.Weights(url=url, transforms=None, meta={})
        DEFAULT = IMAGENET1K_V1

    monkeypatch.setitem(models.TORCHVISION, "resnet18", LocalWeights)
    monkeypatch.setattr(models, "DOWNLOAD_TIMEOUT_S", 0.5)
    try:
        with pytest.raises(UserError) as err:
            build_model("resnet18", 18, "imagenet")
    finally:
        server.close()
    text = _one_line(err)
    assert RESNET18_FILE in text and f"{offline}/" in text
    # A download cut short is caught by http.client (IncompleteRead) or else by the hash check.
    expected = {"wrong_hash": ["invalid hash value"], "cut_short": ["IncompleteRead", "invalid hash value"],
                "stalled": ["timed out"]}[kind]
    assert any(phrase in text for phrase in expected), text
    assert list(offline.iterdir()) == []  # no checkpoint and no .partial file
    assert socket.getdefaulttimeout() is None  # the short timeout was only for the download


def test_a_hub_file_that_cannot_be_read_is_named(offline):
    offline.mkdir(parents=True)
    (offline / RESNET18_FILE).write_bytes(b"\x00" * 64)
    with pytest.raises(UserError) as err:
        build_model("resnet18", 18, "auto")
    text = _one_line(err)
    assert str(offline / RESNET18_FILE) in text and "delete the file" in text


def test_smallcnn_has_no_imagenet_weights():
    with pytest.raises(UserError, match=r"smallcnn: no ImageNet weights exist"):
        build_model("smallcnn", 18, "imagenet")
    assert "training from scratch" in build_model("smallcnn", 18, "auto")[1]


def test_weights_files_still_work_and_foreign_ones_are_refused(tmp_path):
    own = tmp_path / "resnet.pth"
    torch.save(new_model("resnet18", 7).state_dict(), own)
    model, note = build_model("resnet18", 18, str(own), head="factorized")
    assert note == f"loaded weights for resnet18 from {own} (2 head tensor(s) left new)"
    assert torch.equal(model.state_dict()["conv1.weight"], torch.load(own, weights_only=True)["conv1.weight"])
    foreign = tmp_path / "small.pth"
    torch.save(new_model("smallcnn", 18).state_dict(), foreign)
    with pytest.raises(UserError, match=r"small.pth: not a state_dict for model 'resnet18'"):
        build_model("resnet18", 18, str(foreign))
    with pytest.raises(UserError, match=r"missing.pth: weights file does not exist.*auto, imagenet, none"):
        build_model("resnet18", 18, str(tmp_path / "missing.pth"))


# --- timm ---------------------------------------------------------------------------------

TIMM_MODEL = "timm/test_efficientnet"  # timm's own 0.1M-parameter test model; any input size
TIMM_REPO = "timm/test_efficientnet.r160_in1k"  # where its default pretrained weights live


@pytest.mark.parametrize("name", [TIMM_MODEL, "timm/resnet18"])
@pytest.mark.parametrize("head", ["flat", "factorized"])
def test_timm_models_build_with_our_heads(name, head):
    model, note = build_model(name, 18, "none", head)
    assert note == f"{name}: training from scratch (weights=none)"
    assert isinstance(model.head, models.FactorizedHead if head == "factorized" else torch.nn.Linear)
    assert model.eval()(torch.zeros(2, 3, 64, 64)).shape == (2, 18)


def test_unknown_timm_names_get_suggestions():
    check_model_name("timm/convnext_tiny")
    with pytest.raises(UserError, match=r"model 'timm/resnet81': timm has no model 'resnet81'.*timm/resnet18"):
        check_model_name("timm/resnet81")
    with pytest.raises(UserError, match=r"model 'resnet19' is not supported \(did you mean resnet18\?\).*timm/"):
        check_model_name("resnet19")


def test_timm_imagenet_offline_fails_in_one_line_and_auto_trains_from_scratch(offline, hf_cache):
    with pytest.raises(UserError) as err:
        build_model(TIMM_MODEL, 18, "imagenet")
    text = _one_line(err)
    assert "model.safetensors" in text and TIMM_REPO in text and "--weights FILE" in text and str(hf_cache) in text
    model, note = build_model(TIMM_MODEL, 18, "auto", "factorized")
    assert "training from scratch" in note and TIMM_REPO in note and "\n" not in note
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 18)


def _timm_state() -> dict:
    import timm

    return timm.create_model(TIMM_MODEL.removeprefix("timm/")).state_dict()


def test_timm_weights_in_the_hugging_face_cache_load_without_the_network(offline, hf_cache, tmp_path):
    from safetensors.torch import save_file  # timm requires safetensors
    saved = _timm_state()
    commit = hashlib.sha1(b"test").hexdigest()
    repo_dir = hf_cache / ("models--" + TIMM_REPO.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    save_file(saved, str(snapshot / "model.safetensors"))
    model, note = build_model(TIMM_MODEL, 18, "imagenet", "factorized")
    assert note == (f"loaded weights for {TIMM_MODEL} from {snapshot / 'model.safetensors'} "
                    "(ImageNet, found in the Hugging Face cache)")
    got = model.state_dict()
    for key, value in saved.items():
        if not key.startswith("classifier."):
            assert torch.equal(got["backbone." + key], value), key


def test_timm_weights_file_loads_into_the_backbone(tmp_path):
    saved = _timm_state()  # timm's own layout: no "backbone." prefix, a 1000-class classifier
    path = tmp_path / "efficientnet.pth"
    torch.save(saved, path)
    model, note = build_model(TIMM_MODEL, 18, str(path))
    assert note == f"loaded weights for {TIMM_MODEL} from {path} (2 head tensor(s) left new)"
    assert torch.equal(model.state_dict()["backbone.conv_stem.weight"], saved["conv_stem.weight"])
    ours = tmp_path / "ours.pth"  # a model saved by this project (prefixed keys) loads whole
    torch.save(model.state_dict(), ours)
    assert build_model(TIMM_MODEL, 18, str(ours))[1] == f"loaded weights for {TIMM_MODEL} from {ours}"
