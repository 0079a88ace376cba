"""docker-compose's `nats-pki` step: NATS as `pitlane up` secures it (ADR 14), for the `nats` container.

Run once per volume by the Pitlane image (every service installed), before NATS starts: the cluster CA, the
server's certificate for the name `nats`, one nkey user per installed service with the permissions of
security/nats_access.py (plus the `operator` user of the `pitlane` CLI), and the server's configuration.
Everything is kept in the `pki` volume and reused on the next `docker compose up`:

    /pki/ca.crt, ca.key              the CA services verify the server against
    /pki/nats-server.crt/.key        the server's certificate
    /pki/users/<user>.nk             each user's nkey seed (0600, owned by the image's user)
    /pki/nats-server.conf            TLS, JetStream and the users (public keys only)
    /pki/clients/<service>/          what one service mounts (subpath): ca.crt and its own user.nk only
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from pitlane_platform.devcluster.secure_nats import secure_nats
from pitlane_platform.security.nats_access import server_config_text
from pitlane_platform.services import installed_services

SERVER_NAME = "nats"  # the compose service's name: the host in every service's NATS_URL
STORE_DIR = "/data"  # the nats container's volume
MONITORING_PORT = 8222  # its health check; not published


def main(directory: Path) -> None:
    secured = secure_nats(directory, installed_services(), server_names=(SERVER_NAME, "localhost"))
    config = json.loads(server_config_text(tls=secured.tls, users=secured.users, max_payload=None))
    # The nats container reads the certificates where the volume is mounted on it, as here.
    config.update(server_name=SERVER_NAME, jetstream={"store_dir": STORE_DIR}, http_port=MONITORING_PORT)
    (directory / "nats-server.conf").write_text(json.dumps(config, indent=2) + "\n")
    for spec in installed_services():
        client = directory / "clients" / spec.name
        client.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(secured.ca_file, client / "ca.crt")
        shutil.copy2(secured.seed_file(spec.name), client / "user.nk")  # keeps 0600
    print(f"nats-pki: CA, server certificate and {len(secured.users)} users in {directory}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/pki"))
