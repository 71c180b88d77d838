"""A small stand-in for the Hugging Face Hub's HTTP API: enough for create_repo + create_commit.

It records every request (method, path, JSON body) and the files of each commit, so a test can check
what an upload really sent. Reached by setting HF_ENDPOINT before huggingface_hub is imported.
"""
from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHub:
    def __init__(self):
        self.requests: list[dict] = []  # {method, path, json?, authorization}
        self.commits: list[dict] = []  # {repo, summary, files: {path: bytes}}
        self.repos: dict[str, dict] = {}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, code: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self):
                hub.requests.append({"method": "GET", "path": self.path,
                                     "authorization": self.headers.get("Authorization")})
                self._send(404, {"error": f"not found: {self.path}"})

            def do_POST(self):
                raw = self._body()
                entry = {"method": "POST", "path": self.path, "authorization": self.headers.get("Authorization")}
                hub.requests.append(entry)
                if self.path == "/api/repos/create":
                    body = json.loads(raw)
                    entry["json"] = body
                    repo = f"{body.get('organization') or 'me'}/{body['name']}"
                    hub.repos[repo] = body
                    return self._send(200, {"url": f"{hub.url}/{repo}", "name": repo})
                if self.path == "/api/validate-yaml":  # README.md's metadata block: accepted as is
                    return self._send(200, {"errors": [], "warnings": []})
                parts = self.path.split("?")[0].strip("/").split("/")
                # /api/models/<owner>/<name>/preupload/<rev>  and  /api/models/<owner>/<name>/commit/<rev>
                if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "preupload":
                    body = json.loads(raw)
                    entry["json"] = body
                    return self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                       "shouldIgnore": False} for f in body["files"]]})
                if len(parts) == 6 and parts[:2] == ["api", "models"] and parts[4] == "commit":
                    lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
                    header = next(x["value"] for x in lines if x["key"] == "header")
                    files = {x["value"]["path"]: base64.b64decode(x["value"]["content"])
                             for x in lines if x["key"] == "file"}
                    hub.commits.append({"repo": f"{parts[2]}/{parts[3]}", "summary": header.get("summary"),
                                        "files": files})
                    return self._send(200, {"commitUrl": f"{hub.url}/{parts[2]}/{parts[3]}/commit/1",
                                            "commitOid": "1" * 40, "success": True})
                self._send(404, {"error": f"not found: {self.path}"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
