"""Stand-in for get-pip.py, which ansible-test downloads from a host we cannot reach.

ansible-test runs it as ``python get_pip.py pip==X.Y --no-setuptools --no-wheel``
to put pip into the virtualenvs it makes for sanity tests. We install pip from
the interpreter's bundled wheel (ensurepip), then the requested version from the
package index that pip is configured for.
"""
import subprocess
import sys


def main():
    subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
    wanted = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    if wanted:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q"] + wanted)


if __name__ == "__main__":
    main()
