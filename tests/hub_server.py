"""A tiny in-memory Hugging Face Hub for tests, on 127.0.0.1, standard library only.

It speaks just the part of the Hub API that ``huggingface_hub`` 2.x uses to create a
model repo, commit small files ("regular" upload mode, so no LFS/Xet traffic), and
download them again:

- ``POST /api/repos/create``                                  -> {"url"}, 409 if it exists
- ``POST /api/validate-yaml``                                 -> {} (model card metadata)
- ``POST /api/models/{repo}/preupload/{rev}``                 -> every file "regular"
- ``POST /api/models/{repo}/commit/{rev}``                    -> NDJSON header/file/deletedFile
- ``HEAD|GET /{repo}/resolve/{rev}/{path}``                   -> X-Repo-Commit, ETag
- ``GET /api/models/{repo}[/revision/{rev}]``                 -> model info with siblings

Errors carry ``X-Error-Code: RepoNotFound | RevisionNotFound | EntryNotFound`` as the Hub
does, so the client raises its specific exceptions. Revisions are branch names or full
commit ids. Every request is recorded in ``HubServer.requests`` for assertions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

REPO = r"(?P<repo>[\w.-]+(?:/[\w.-]+)?)"


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, rev: str) -> str | None:
        if rev in self.branches:
            return self.branches[rev]
        return rev if rev in self.commits else None


class HubServer:
    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._counter = 0
        handler = type("Handler", (_Handler,), {"hub": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def new_commit(self, repo: Repo, files: dict[str, bytes], message: str) -> str:
        self._counter += 1
        digest = hashlib.sha1(f"{self._counter}:{message}".encode())
        for path in sorted(files):
            digest.update(path.encode() + hashlib.sha1(files[path]).digest())
        oid = digest.hexdigest()
        repo.commits[oid] = files
        return oid


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    # -- plumbing ----------------------------------------------------------------------------
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, code: str, message: str) -> None:
        self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _route(self, pattern: str) -> re.Match | None:
        return re.fullmatch(pattern, unquote(urlsplit(self.path).path))

    def _repo(self, repo_id: str) -> Repo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
        return repo

    def _revision(self, repo_id: str, rev: str) -> tuple[Repo, str] | None:
        """The repo and the commit ``rev`` names in it, or None after sending the Hub's 404."""
        repo = self._repo(repo_id)
        if repo is None:
            return None
        oid = repo.resolve(rev)
        if oid is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return None
        return repo, oid

    # -- verbs ---------------------------------------------------------------------------------
    def do_POST(self) -> None:
        self.hub.requests.append(("POST", self.path))
        body = self._body()
        with self.hub.lock:
            if self._route(r"/api/repos/create"):
                payload = json.loads(body)
                repo_id = "/".join(p for p in (payload.get("organization"), payload["name"]) if p)
                url = {"url": f"{self.hub.url}/{repo_id}", "name": repo_id}
                if repo_id in self.hub.repos:
                    return self._json(409, {**url, "error": "You already created this model repo"})
                repo = self.hub.repos[repo_id] = Repo()
                repo.branches["main"] = self.hub.new_commit(repo, {".gitattributes": b"*.safetensors filter=lfs\n"},
                                                            "initial commit")
                return self._json(200, url)
            if self._route(r"/api/validate-yaml"):
                return self._json(200, {})
            if m := self._route(rf"/api/models/{REPO}/preupload/(?P<rev>.+)"):
                if self._repo(m["repo"]) is None:
                    return
                files = json.loads(body)["files"]
                return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                                  for f in files]})
            if m := self._route(rf"/api/models/{REPO}/commit/(?P<rev>.+)"):
                if (found := self._revision(m["repo"], m["rev"])) is None:
                    return
                repo, parent = found
                files = dict(repo.commits[parent])
                message = ""
                for line in body.splitlines():
                    item = json.loads(line)
                    if item["key"] == "header":
                        message = item["value"]["summary"]
                    elif item["key"] == "file":
                        files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    elif item["key"] == "deletedFile":
                        files.pop(item["value"]["path"], None)
                    else:
                        return self._error(400, "BadRequest", f"unsupported commit operation {item['key']}")
                oid = self.hub.new_commit(repo, files, message)
                repo.branches[m["rev"] if m["rev"] in repo.branches else "main"] = oid
                return self._json(200, {"commitUrl": f"{self.hub.url}/{m['repo']}/commit/{oid}",
                                        "commitOid": oid, "success": True})
        self._error(404, "NotFound", f"no route for POST {self.path}")

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        self.hub.requests.append((self.command, self.path))
        with self.hub.lock:
            if m := self._route(rf"/api/models/{REPO}(?:/revision/(?P<rev>.+))?"):
                if (found := self._revision(m["repo"], m["rev"] or "main")) is None:
                    return
                repo, oid = found
                return self._json(200, {
                    "id": m["repo"], "modelId": m["repo"], "sha": oid, "private": False, "tags": [],
                    "siblings": [{"rfilename": p} for p in sorted(repo.commits[oid])],
                })
            if m := self._route(rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"):
                if (found := self._revision(m["repo"], m["rev"])) is None:
                    return
                repo, oid = found
                data = repo.commits[oid].get(m["path"])
                if data is None:
                    return self._error(404, "EntryNotFound", f"{m['path']} does not exist at {m['rev']}")
                etag = hashlib.sha256(data).hexdigest()
                return self._send(200, data, {"X-Repo-Commit": oid, "ETag": f'"{etag}"'},
                                  content_type="application/octet-stream")
        self._error(404, "NotFound", f"no route for GET {self.path}")
