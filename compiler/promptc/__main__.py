"""``python -m promptc``: the same as the ``promptc`` command."""

from promptc.cli.app import main

if __name__ == "__main__":
    main()
