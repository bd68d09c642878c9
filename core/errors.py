"""Errors that reach users. Each message names the file or value, the rule and the way out."""


class UserError(Exception):
    """Bad input from the user: the CLI prints it as one line and exits with status 2."""


class DatasetError(UserError):
    """The dataset cannot be used at all (missing root, unknown layout...)."""

    def __init__(self, message: str, problems: list | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


class RecipeError(UserError):
    """A recipe key or value breaks its rule."""


class CheckpointError(UserError):
    """A file is not a checkpoint written by this project."""


def a(noun: str) -> str:
    """``noun`` with its indefinite article, for messages: "an output folder", "a recipe".
    By the first letter (a vowel takes "an"), which serves the names the messages use."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
