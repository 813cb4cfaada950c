import typer

app = typer.Typer()


@app.command()
def search() -> None:
    """Placeholder while installing."""


def main() -> None:
    app()
