"""A small Hugging Face Hub for tests, served on 127.0.0.1.

It implements just enough of the Hub HTTP API that the real
`huggingface_hub` client (2.x) runs end to end against it: `create_repo`,
`upload_folder` (through its streamed pipeline, or with Xet disabled
through `create_commit` and the LFS batch API), `model_info`,
`list_repo_tree`, `hf_hub_download` and `snapshot_download`. Repositories
live in memory as a chain of commits, each a full `{path: bytes}` tree.

Endpoints:

    POST /api/repos/create
    POST /api/validate-yaml
    GET  /api/agent-harnesses                        (client telemetry)
    POST /api/models/<repo>/preupload/<revision>
    POST /api/models/<repo>/commit/<revision>          (NDJSON)
    GET  /api/models/<repo>[/revision/<revision>]
    GET  /api/models/<repo>/tree/<revision>[/<path>]
    HEAD|GET /<repo>/resolve/<revision>/<path>
    POST /<repo>.git/info/lfs/objects/batch           (basic transfer)
    PUT  /lfs/<sha256>, POST /lfs/verify

Xet storage is not implemented: with `use_lfs=True` the client must run
with Xet disabled (`HF_HUB_DISABLE_XET`), which `point_client_at` does.

Example:
```python
with HubServer() as hub:
    point_client_at(monkeypatch, hub.url, hf_home=str(tmp_path / "hf_home"))
    huggingface_hub.HfApi().create_repo("owner/repo")
assert ("POST", "/api/repos/create") in hub.requests
```
"""

import base64
import datetime
import hashlib
import http.server
import json
import os
import threading
import urllib.parse

import yaml

# Files the Hub keeps in git at most; beyond, it asks for LFS.
REGULAR_FILE_LIMIT = 10 * 1024 * 1024
GITATTRIBUTES = b"*.h5 filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_sha1(content):
    """The git object id of a blob, which the Hub uses as a file's oid."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _lfs_pointer(sha256, size):
    return (
        "version https://git-lfs.github.com/spec/v1\n"
        f"oid sha256:{sha256}\nsize {size}\n"
    ).encode()


class _File:
    def __init__(self, content, lfs):
        self.content = content
        self.lfs = lfs
        self.sha256 = hashlib.sha256(content).hexdigest()

    @property
    def oid(self):
        """What preupload reports, as the client computes it locally."""
        return self.sha256 if self.lfs else git_blob_sha1(self.content)

    def tree_entry(self, path):
        entry = {"type": "file", "path": path, "size": len(self.content)}
        if self.lfs:
            pointer = _lfs_pointer(self.sha256, len(self.content))
            entry["oid"] = git_blob_sha1(pointer)
            entry["lfs"] = {
                "oid": self.sha256,
                "size": len(self.content),
                "pointerSize": len(pointer),
            }
        else:
            entry["oid"] = git_blob_sha1(self.content)
        return entry


class _Repo:
    def __init__(self, repo_id, private):
        self.repo_id = repo_id
        self.private = private
        self.commits = {}  # oid -> {path: _File}
        self.refs = {}  # branch -> oid
        self.created_at = datetime.datetime.now(datetime.timezone.utc)

    def commit(self, files, message, branch="main"):
        parent = self.refs.get(branch, "")
        digest = hashlib.sha1(
            f"{self.repo_id}\n{parent}\n{message}\n".encode()
            + b"".join(
                path.encode() + b"\0" + f.sha256.encode()
                for path, f in sorted(files.items())
            )
        )
        oid = digest.hexdigest()
        self.commits[oid] = dict(files)
        self.refs[branch] = oid
        return oid

    def resolve(self, revision):
        """A branch name or full commit id -> commit id, or None."""
        if revision in self.refs:
            return self.refs[revision]
        return revision if revision in self.commits else None


class HubError(Exception):
    """An error response, with the headers the client maps to exceptions."""

    def __init__(
        self, status, message, error_code=None, headers=None, extra=None
    ):
        super().__init__(message)
        self.status = status
        self.body = {"error": message, **(extra or {})}
        self.headers = dict(headers or {})
        self.headers["X-Error-Message"] = message
        if error_code:
            self.headers["X-Error-Code"] = error_code


class HubServer:
    """An in-memory Hub on an ephemeral 127.0.0.1 port.

    Use as a context manager, or `start()` / `stop()`. It stops by itself
    after `lifetime` seconds, so a test that hangs cannot leave it behind.

    Args:
        token: the write token it accepts (`Authorization: Bearer ...`);
            reads of public repositories need none.
        use_lfs: when True, binary files (a NUL byte in the first 512
            bytes, git's heuristic) and files over 10 MB are routed
            through the LFS batch API, as the Hub does; when False every
            file is committed inline.
        lifetime: seconds after which the server shuts itself down.

    Attributes:
        url: `http://127.0.0.1:<port>`, once started.
        requests: `(method, path)` of every request received, in order.
        unhandled: `(method, path)` of requests it does not implement.
        repos: `{repo_id: _Repo}`.
    """

    def __init__(self, token="hf_test_token", use_lfs=False, lifetime=120):
        self.token = token
        self.use_lfs = use_lfs
        self.lifetime = lifetime
        self.requests = []
        self.unhandled = []
        self.repos = {}
        self.lfs_objects = {}  # sha256 -> bytes
        self.url = None
        self._lock = threading.RLock()
        self._httpd = None
        self._timer = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def start(self):
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        ).start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self):
        with self._lock:
            httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._timer.cancel()
        httpd.shutdown()
        httpd.server_close()

    def files(self, repo_id, revision="main"):
        """The `{path: bytes}` tree of a revision."""
        repo = self.repos[repo_id]
        commit = repo.commits[repo.resolve(revision)]
        return {path: f.content for path, f in commit.items()}

    # --- Request handling (called by `_Handler`, under the lock). ---

    def handle(self, method, path, query, headers, body):
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
        for route_method, matcher, action in self._routes():
            if route_method != method and not (
                route_method == "GET" and method == "HEAD"
            ):
                continue
            arguments = matcher(parts)
            if arguments is not None:
                return action(
                    *arguments, query=query, headers=headers, body=body
                )
        self.unhandled.append((method, path))
        raise HubError(
            404, f"{method} {path} is not implemented by tests/hub_server.py"
        )

    def _routes(self):
        return (
            ("POST", _exact("api", "repos", "create"), self._create_repo),
            ("POST", _exact("api", "validate-yaml"), self._validate_yaml),
            ("GET", _exact("api", "agent-harnesses"), self._agent_harnesses),
            ("POST", _api_repo("preupload", 1), self._preupload),
            ("POST", _api_repo("commit", 1), self._commit),
            ("GET", _api_repo("revision", 1), self._model_info),
            ("GET", _api_repo(), self._model_info),
            ("GET", _api_repo("tree"), self._tree),
            ("GET", _resolve, self._resolve),
            ("POST", _lfs_batch, self._lfs_batch),
            ("PUT", _prefix("lfs"), self._lfs_put),
            ("POST", _exact("lfs", "verify"), self._lfs_verify),
        )

    def _check_write_token(self, headers):
        if headers.get("authorization") != f"Bearer {self.token}":
            raise HubError(401, "Invalid credentials in Authorization header")

    def _repo(self, repo_id, headers, write=False):
        if write:
            self._check_write_token(headers)
        repo = self.repos.get(repo_id)
        authorized = headers.get("authorization") == f"Bearer {self.token}"
        if repo is None or (repo.private and not authorized):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _commit_id(self, repo, revision):
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(
                404, f"Invalid rev id: {revision}", "RevisionNotFound"
            )
        return commit

    def _create_repo(self, query, headers, body):
        self._check_write_token(headers)
        payload = json.loads(body)
        if payload.get("type", "model") != "model":
            raise HubError(400, "This test Hub only hosts model repositories")
        repo_id = f"{payload['organization']}/{payload['name']}"
        url = f"{self.url}/{repo_id}"
        if repo_id in self.repos:
            raise HubError(
                409, "You already created this model repo", extra={"url": url}
            )
        repo = _Repo(repo_id, private=payload.get("visibility") == "private")
        repo.commit(
            {".gitattributes": _File(GITATTRIBUTES, lfs=False)},
            "initial commit",
        )
        self.repos[repo_id] = repo
        return 200, {"url": url, "name": repo_id, "id": repo_id}, {}

    def _validate_yaml(self, query, headers, body):
        content = json.loads(body)["content"]
        if content.startswith("---"):
            front = content[3:].partition("\n---")[0]
            try:
                metadata = yaml.safe_load(front)
            except yaml.YAMLError as e:
                return 400, {"errors": [{"message": f"Invalid YAML: {e}"}]}, {}
            if metadata is not None and not isinstance(metadata, dict):
                return (
                    400,
                    {"errors": [{"message": "Metadata must be a mapping"}]},
                    {},
                )
        return 200, {"errors": [], "warnings": []}, {}

    def _agent_harnesses(self, query, headers, body):
        # The client fetches this registry once a process for its
        # user-agent; an empty one detects no agent.
        return 200, {"standardEnvVars": [], "harnesses": {}}, {}

    def _upload_mode(self, sample, size):
        binary = b"\0" in sample
        return (
            "lfs"
            if self.use_lfs and (binary or size > REGULAR_FILE_LIMIT)
            else "regular"
        )

    def _preupload(self, repo_id, revision, query, headers, body):
        repo = self._repo(repo_id, headers, write=True)
        tree = repo.commits[self._commit_id(repo, revision)]
        files = []
        for item in json.loads(body)["files"]:
            existing = tree.get(item["path"])
            sample = base64.b64decode(item["sample"])
            files.append(
                {
                    "path": item["path"],
                    "uploadMode": self._upload_mode(sample, item["size"]),
                    "shouldIgnore": False,
                    "oid": existing.oid if existing else None,
                }
            )
        return 200, {"files": files, "commitOid": repo.resolve(revision)}, {}

    def _commit(self, repo_id, revision, query, headers, body):
        repo = self._repo(repo_id, headers, write=True)
        if query.get("create_pr"):
            raise HubError(
                400, "Pull requests are not implemented by tests/hub_server.py"
            )
        if revision not in repo.refs:
            raise HubError(
                404, f"Invalid rev id: {revision}", "RevisionNotFound"
            )
        tree = dict(repo.commits[repo.refs[revision]])
        summary = ""
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                summary = value["summary"]
                parent = value.get("parentCommit")
                if parent and parent != repo.refs[revision]:
                    raise HubError(
                        412, "A commit has happened since the parent commit"
                    )
            elif key == "file":
                tree[value["path"]] = _File(
                    base64.b64decode(value["content"]), lfs=False
                )
            elif key == "lfsFile":
                content = self.lfs_objects.get(value["oid"])
                if content is None:
                    raise HubError(
                        400,
                        f"LFS pointer of {value['path']} points at an object "
                        "that was not uploaded",
                    )
                tree[value["path"]] = _File(content, lfs=True)
            elif key == "deletedFile":
                tree.pop(value["path"], None)
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                tree = {
                    p: f for p, f in tree.items() if not p.startswith(prefix)
                }
            else:
                raise HubError(400, f"Unknown commit operation '{key}'")
        oid = repo.commit(tree, summary, branch=revision)
        return (
            200,
            {
                "success": True,
                "commitOid": oid,
                "commitUrl": f"{self.url}/{repo_id}/commit/{oid}",
                "hookOutput": "",
            },
            {},
        )

    def _model_info(self, repo_id, revision="main", *, query, headers, body):
        repo = self._repo(repo_id, headers)
        oid = self._commit_id(repo, revision)
        tree = repo.commits[oid]
        # The Hub's format, which the client parses strictly.
        created_at = repo.created_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        siblings = [
            {
                "rfilename": path,
                "size": len(f.content),
                "blobId": f.tree_entry(path)["oid"],
            }
            for path, f in sorted(tree.items())
        ]
        return (
            200,
            {
                "id": repo_id,
                "modelId": repo_id,
                "author": repo_id.split("/")[0],
                "sha": oid,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "createdAt": created_at,
                "lastModified": created_at,
                "tags": [],
                "siblings": siblings,
            },
            {},
        )

    def _tree(self, repo_id, revision, *path, query, headers, body):
        repo = self._repo(repo_id, headers)
        tree = repo.commits[self._commit_id(repo, revision)]
        prefix = "/".join(path).strip("/")
        prefix = prefix + "/" if prefix else ""
        recursive = query.get("recursive", "false").lower() in ("true", "1")
        entries = {}
        for file_path, f in sorted(tree.items()):
            if not file_path.startswith(prefix):
                continue
            relative = file_path[len(prefix) :].split("/")
            if recursive:
                folders = [
                    "/".join(relative[:i]) for i in range(1, len(relative))
                ]
            else:
                folders = relative[:1] if len(relative) > 1 else []
            for folder in folders:
                folder = prefix + folder
                entries[folder] = {
                    "type": "directory",
                    "path": folder,
                    "oid": git_blob_sha1(folder.encode()),
                }
            if recursive or len(relative) == 1:
                entries[file_path] = f.tree_entry(file_path)
        if prefix and not entries:
            raise HubError(404, f"{prefix} does not exist", "EntryNotFound")
        return 200, list(entries.values()), {}

    def _resolve(self, repo_id, revision, *path, query, headers, body):
        repo = self._repo(repo_id, headers)
        oid = self._commit_id(repo, revision)
        file_path = "/".join(path)
        f = repo.commits[oid].get(file_path)
        if f is None:
            raise HubError(
                404,
                f"Entry not found: {file_path}",
                "EntryNotFound",
                headers={"X-Repo-Commit": oid},
            )
        # As on the Hub: an LFS file's ETag is its pointer's git id, and
        # X-Linked-Etag (which the client prefers) its content's sha256.
        response_headers = {
            "X-Repo-Commit": oid,
            "ETag": f'"{f.tree_entry(file_path)["oid"]}"',
            "Content-Type": "application/octet-stream",
        }
        if f.lfs:
            response_headers["X-Linked-Etag"] = f'"{f.sha256}"'
            response_headers["X-Linked-Size"] = str(len(f.content))
        return 200, f.content, response_headers

    def _lfs_batch(self, repo_id, query, headers, body):
        self._repo(repo_id, headers, write=True)
        payload = json.loads(body)
        if payload.get("operation") != "upload" or "basic" not in payload.get(
            "transfers", ["basic"]
        ):
            raise HubError(400, "Only basic LFS uploads are implemented")
        objects = []
        for item in payload["objects"]:
            entry = {
                "oid": item["oid"],
                "size": item["size"],
                "authenticated": True,
            }
            if item["oid"] not in self.lfs_objects:
                entry["actions"] = {
                    "upload": {"href": f"{self.url}/lfs/{item['oid']}"},
                    "verify": {"href": f"{self.url}/lfs/verify"},
                }
            objects.append(entry)
        return (
            200,
            {"transfer": "basic", "objects": objects},
            {"Content-Type": "application/vnd.git-lfs+json"},
        )

    def _lfs_put(self, oid, query, headers, body):
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, "Uploaded content does not match its sha256")
        self.lfs_objects[oid] = body
        return 200, b"", {}

    def _lfs_verify(self, query, headers, body):
        self._check_write_token(headers)
        item = json.loads(body)
        content = self.lfs_objects.get(item["oid"])
        if content is None or len(content) != item["size"]:
            raise HubError(404, f"LFS object {item['oid']} was not uploaded")
        return 200, {"success": True}, {}


# --- Route matchers: path segments -> handler arguments, or None. ---


def _exact(*segments):
    return lambda parts: () if tuple(parts) == segments else None


def _prefix(segment):
    return lambda parts: (
        (parts[1],) if len(parts) == 2 and parts[0] == segment else None
    )


def _api_repo(action=None, count=None):
    """`api/models/<ns>/<name>[/<action>/<count segments>]`.

    `action=None` matches the bare repository path; `count=None` one or
    more segments after the action.
    """

    def match(parts):
        if len(parts) < 4 or parts[:2] != ["api", "models"]:
            return None
        repo_id, rest = "/".join(parts[2:4]), parts[4:]
        if action is None:
            return (repo_id,) if not rest else None
        if not rest or rest[0] != action:
            return None
        arguments = rest[1:]
        if count is None:
            wrong_count = not arguments
        else:
            wrong_count = len(arguments) != count
        return None if wrong_count else (repo_id, *arguments)

    return match


def _resolve(parts):
    if len(parts) >= 5 and parts[2] == "resolve":
        return ("/".join(parts[:2]), parts[3], *parts[4:])
    return None


def _lfs_batch(parts):
    if (
        len(parts) == 6
        and parts[1].endswith(".git")
        and parts[2:] == ["info", "lfs", "objects", "batch"]
    ):
        return (f"{parts[0]}/{parts[1][: -len('.git')]}",)
    return None


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Idle keep-alive connections close after this, so threads end.
    timeout = 5
    hub = None  # set by HubServer.start

    def log_message(self, format, *args):
        pass  # keep test output clean

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self):
        split = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(split.query))
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = self._read_body()
        with self.hub._lock:
            self.hub.requests.append((self.command, split.path))
            try:
                status, content, response_headers = self.hub.handle(
                    self.command, split.path, query, headers, body
                )
            except HubError as e:
                status, content, response_headers = e.status, e.body, e.headers
        if not isinstance(content, bytes):
            content = json.dumps(content).encode()
            response_headers.setdefault("Content-Type", "application/json")
        self.send_response(status)
        for key, value in response_headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    do_GET = do_HEAD = do_POST = do_PUT = _dispatch


def point_client_at(monkeypatch, url, hf_home, token="hf_test_token", xet=None):
    """Point `huggingface_hub` at `url`, with a fresh HF_HOME and a token.

    huggingface_hub reads HF_ENDPOINT, HF_HOME and the paths under it,
    HF_HUB_OFFLINE and HF_HUB_DISABLE_XET once, at import; this sets the
    environment variables and patches what the client read from them, so
    that nothing is read from or written to the user's own cache.

    Args:
        monkeypatch: pytest's fixture, which undoes it all after the test.
        url: the Hub URL, e.g. `HubServer().url`.
        hf_home: an empty folder for HF_HOME; the cache is `<hf_home>/hub`.
        token: the token in HF_TOKEN, or None for none.
        xet: whether the client may use Xet; None keeps its setting.
    """
    from huggingface_hub import constants

    paths = {
        "HF_HOME": hf_home,
        "HF_HUB_CACHE": os.path.join(hf_home, "hub"),
        "HF_XET_CACHE": os.path.join(hf_home, "xet"),
        "HF_TOKEN_PATH": os.path.join(hf_home, "token"),
    }
    for name, value in {"HF_ENDPOINT": url, **paths}.items():
        monkeypatch.setenv(name, value)
        if name != "HF_ENDPOINT":
            monkeypatch.setattr(constants, name, value)
    monkeypatch.setattr(
        constants,
        "HF_STORED_TOKENS_PATH",
        os.path.join(hf_home, "stored_tokens"),
    )
    # The client caches a registry it fetches from the Hub in HF_HOME.
    monkeypatch.setattr(
        constants,
        "AGENT_HARNESSES_PATH",
        os.path.join(hf_home, ".agent_harnesses.json"),
    )
    if token is None:
        monkeypatch.delenv("HF_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        url + "/{repo_id}/resolve/{revision}/{filename}",
    )
    if xet is not None:
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", not xet)
