"""`python -m accessiq`: the same as the `accessiq` command."""

from accessiq.cli import main

if __name__ == "__main__":
    main()
