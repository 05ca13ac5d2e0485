"""`python -m accessiq`: the same as the `accessiq` command."""

from accessiq.processes import main

if __name__ == "__main__":
    main()
