"""Command modules. Each module defines `register(app: typer.Typer) -> None`;
`tator_cli.main` discovers them, so areas add commands without touching a
shared file."""
