"""``wfctl shards add`` on a PostgreSQL deployment spread over machines and servers: the new shards
placed with ``--place`` on a second server, another machine's running worker serving them, its
``wfctl.json`` following the catalog, and a machine joining afterwards with the new count."""

from __future__ import annotations

import json
import shutil
import subprocess

from helpers import EXAMPLES, wait_until, wfctl, wfctl_argv, wfctl_env
from pg import drop_prefix, pg_dsn, second_server, unique_prefix
from wfctl.engine import Engine
from wfctl.store import DataDir


def test_shards_added_on_a_second_server_are_served_by_another_machines_running_worker(tmp_path):
    main = pg_dsn()
    prefix = unique_prefix("resize")
    a, b, c = (tmp_path / name for name in ("machine-a", "machine-b", "machine-c"))
    options = {"dsn": main, "schema_prefix": prefix}
    with second_server() as server:
        worker = None
        try:
            DataDir.init(a, shards=2, route="execution", backend="postgresql", options=options)
            with Engine(a) as engine:
                engine.apply([EXAMPLES / "hello.json"])
                ids = [engine.start("hello").execution_id for _ in range(6)]
            b.mkdir()
            shutil.copy(a / "secret.key", b / "secret.key")
            DataDir.init(b, shards=2, route="execution", backend="postgresql", options=options)  # joins
            worker = subprocess.Popen(wfctl_argv(b, "worker", "--no-scheduler"), env=wfctl_env(),
                                      stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True)
            added = wfctl(a, "shards", "add", "2", "--place", f"3={server.dsn}")
            assert added.returncode == 0, added.stderr
            port = server.dsn.split("port=")[1].split()[0]
            assert f"shard 2: 127.0.0.1:{main.split('port=')[1].split()[0]}/" in added.stdout  # the last shard's server
            assert f"shard 3: 127.0.0.1:{port}/postgres schema {prefix}_shard_003" in added.stdout
            with Engine(a) as engine:
                started = [engine.start("hello") for _ in range(12)]
            assert {s.shard for s in started} == {0, 1, 2, 3}
            ids += [s.execution_id for s in started]

            def all_done():
                with Engine(a) as engine:
                    return all(engine.status(eid, steps=1)["status"] == "completed" for eid in ids)

            assert wait_until(all_done, 180)
            # machine B's settings follow the catalog the next time a command opens them
            rows = json.loads(wfctl(b, "shards", "--json").stdout)
            assert [row["shard"] for row in rows] == [0, 1, 2, 3] and f":{port}/postgres schema" in rows[3]["location"]
            assert json.loads((b / "wfctl.json").read_text())["shards"] == 4
            # a machine joining now adopts 4 shards, and the key count
            c.mkdir()
            shutil.copy(a / "secret.key", c / "secret.key")
            joined = wfctl(c, "init", "--backend", "postgresql", "--dsn", main, "--schema-prefix", prefix)
            assert joined.returncode == 0 and "4 shards" in joined.stdout and "joined" in joined.stdout, joined
            settings = json.loads((c / "wfctl.json").read_text())
            assert (settings["shards"], settings["key_shards"]) == (4, 2)
            with Engine(c) as engine:
                assert all(engine.status(eid)["status"] == "completed" for eid in ids)
        finally:
            if worker is not None:
                worker.terminate()
                _, err = worker.communicate(timeout=60)
                assert worker.returncode == 0, err
            drop_prefix(main, prefix)
            drop_prefix(server.dsn, prefix)
