"""`python -m tanglenas_cli` runs the same CLI as the `tanglenas` console script."""

from tanglenas_cli.cli import main

if __name__ == "__main__":
    main()
