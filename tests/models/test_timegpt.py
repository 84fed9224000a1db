"""TimeGPT families against a LOCAL TEST SERVER standing in for Nixtla's API (no real API call is made).

The server records what Nixtla's client sends and answers in the API's format with
made-up numbers (last value + horizon step); the tests check the request bgcore builds
and that the answers land on the right origins and horizons.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from bgcore.data.schema import DataError
from bgcore.evaluation.protocol import context_batch, make_origins
from bgcore.models import registry
from bgcore.models.base import Forecaster
from tests.conftest import make_frame

pytest.importorskip("nixtla")


class FakeNixtla(BaseHTTPRequestHandler):
    requests: list = []

    def log_message(self, *args):
        pass

    def _reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # model metadata
        self.requests.append({"method": "GET", "path": self.path, "auth": self.headers.get("Authorization")})
        self._reply({"detail": {"input_size": 288, "horizon": 48}})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers["content-length"]))
        if self.headers.get("content-encoding") == "zstd":
            import zstandard
            raw = zstandard.ZstdDecompressor().decompress(raw)
        payload = json.loads(raw)
        self.requests.append({"method": "POST", "path": self.path, "auth": self.headers.get("Authorization"),
                              "payload": payload})
        y, sizes, h = np.asarray(payload["series"]["y"]), np.asarray(payload["series"]["sizes"]), payload["h"]
        last = y[np.cumsum(sizes) - 1]
        mean = (last[:, None] + np.arange(1, h + 1)[None, :]).ravel()
        intervals = {f"{side}-{lv}": (mean + sign * lv / 10).tolist() for lv in payload["level"]
                     for side, sign in (("lo", -1), ("hi", 1))}
        self._reply({"mean": mean.tolist(), "intervals": intervals, "weights_x": None})


@pytest.fixture
def server(monkeypatch):
    FakeNixtla.requests = []
    httpd = HTTPServer(("127.0.0.1", 0), FakeNixtla)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("NIXTLA_API_KEY", "test-key")
    monkeypatch.setenv("NIXTLA_BASE_URL", f"http://127.0.0.1:{httpd.server_port}")
    yield FakeNixtla.requests
    httpd.shutdown()


@pytest.fixture
def frame():
    return make_frame(("p1", "p2"), days=3, seed=2)


def test_without_a_key_the_families_are_unavailable_with_the_reason(monkeypatch, frame):
    monkeypatch.delenv("NIXTLA_API_KEY", raising=False)
    rows = {r["name"]: r for r in registry.describe()}
    for name in ("timegpt", "timegpt_long"):
        assert not rows[name]["available"] and "no Nixtla API key" in rows[name]["reason"] and rows[name]["remote"]
    with pytest.raises(DataError, match="needs a Nixtla API key"):
        registry.get("timegpt")().fit(frame)


@pytest.mark.parametrize("name, model", [("timegpt", "timegpt-1"), ("timegpt_long", "timegpt-1-long-horizon")])
def test_request_built_and_answers_mapped_back(server, frame, name, model, cache_dir):
    rows = make_origins(frame)["row"].to_numpy()[::10]
    batch = context_batch(frame, rows, 288)
    assert {r["name"]: r for r in registry.describe()}[name]["available"]
    fitted = registry.get(name)().fit(frame, horizons_min=(30, 60, 120))
    out = fitted.predict_arrays(batch)
    post = [r for r in server if r["method"] == "POST"][-1]
    assert post["path"] == "/v2/forecast" and post["auth"] == "Bearer test-key"
    payload = post["payload"]
    assert payload["model"] == model and payload["h"] == 24 and payload["freq"] == "5min"
    assert payload["level"] == [80, 90] and payload["finetune_steps"] == 0
    sizes = np.asarray(payload["series"]["sizes"])
    assert len(sizes) == len(batch) and (sizes <= 288).all()
    sent_last = np.asarray(payload["series"]["y"])[np.cumsum(sizes) - 1]
    np.testing.assert_allclose(sent_last, batch.cgm[:, -1])  # each series ends at its origin: no look-ahead
    np.testing.assert_allclose(out.point, batch.cgm[:, -1:] + np.array([6, 12, 24]))  # the server's made-up answer
    np.testing.assert_allclose(out.quantiles[:, :, 0], out.point - 9)  # lo-90
    np.testing.assert_allclose(out.quantiles[:, :, 3], out.point + 9)  # hi-90
    loaded = Forecaster.load(fitted.save(cache_dir / "m" / name))
    assert loaded.weights_info()["source"] == "remote" and "127.0.0.1" in loaded.weights_info()["description"]


def test_settings_file_supplies_the_key(monkeypatch, cache_dir, frame):
    from bgcore.models.foundation.timegpt import nixtla_settings
    monkeypatch.delenv("NIXTLA_API_KEY", raising=False)
    monkeypatch.delenv("NIXTLA_BASE_URL", raising=False)
    cache_dir.mkdir(parents=True, exist_ok=True)
    (cache_dir / "settings.json").write_text(json.dumps({"nixtla": {"api_key": "k", "base_url": "http://x"}}))
    assert nixtla_settings() == {"api_key": "k", "base_url": "http://x"}
    (cache_dir / "settings.json").write_text("{broken")
    with pytest.raises(DataError, match="settings.json"):
        nixtla_settings()
