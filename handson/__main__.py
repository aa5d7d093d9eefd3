"""``python -m handson``: the same as the ``handson`` command."""

from handson.cli import main

if __name__ == "__main__":
    main()
