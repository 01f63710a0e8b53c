"""python -m samplebot run | migrate | db-version | version"""

import logging
import sys

from samplebot import config, service, store


def main(argv):
    command = argv[1] if len(argv) > 1 else "run"
    release = config.release()
    if command == "version":
        print(release["version"])
        return 0
    settings = config.settings()
    handlers = [logging.StreamHandler()]
    if config.log_file():
        handlers.append(logging.FileHandler(config.log_file()))
    logging.basicConfig(level=settings["log_level"], handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if command == "run":
        config.token()
        service.run(release, settings)
    elif command == "migrate":
        conn = store.connect()
        ran = store.migrate(conn, release["schema"])
        print("applied %s" % " ".join(ran) if ran else "up to date")
    elif command == "db-version":
        print(store.schema_version(store.connect()))
    else:
        print("usage: python -m samplebot run|migrate|db-version|version", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except config.ConfigError as e:
        print("samplebot: %s" % e, file=sys.stderr)
        sys.exit(2)
