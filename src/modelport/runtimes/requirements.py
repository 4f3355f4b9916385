"""A model's requirements (PEP 508 lines such as ``numpy>=1.26``) checked against what is
installed where it will run. ModelPort never installs packages at serve time: a missing
package or a version outside the range is an error that lists every problem at once."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import InvalidRequirement, Requirement

from modelport.errors import InvalidInputError

MAX_REQUIREMENTS = 200


def parse_requirements(lines: object) -> list[Requirement]:
    """The requirements of a manifest's ``requirements`` list, or why it is not one."""
    if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
        raise InvalidInputError('"requirements" must be a list of strings like "numpy>=1.26"')
    if len(lines) > MAX_REQUIREMENTS:
        raise InvalidInputError(f'"requirements" lists more than {MAX_REQUIREMENTS} packages')
    parsed = []
    for line in lines:
        try:
            parsed.append(Requirement(line))
        except InvalidRequirement as exc:
            raise InvalidInputError(
                f"requirement {line[:100]!r} is not valid (write e.g. 'numpy>=1.26'): {exc}"
            ) from None
    return parsed


def unmet(requirements: list[Requirement]) -> list[str]:
    """Each requirement the installed packages do not satisfy, with what is installed."""
    problems = []
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # not for this platform or Python
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            problems.append(f"{requirement} (not installed)")
            continue
        if not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{requirement} (installed: {installed})")
    return problems


def check_requirements(requirements: list[Requirement]) -> None:
    """Raise a clear error listing every unmet requirement."""
    problems = unmet(requirements)
    if problems:
        wanted = " ".join(f"'{problem.split(' (')[0]}'" for problem in problems)
        raise InvalidInputError(
            "the model needs packages that the server does not have: "
            + "; ".join(problems)
            + f". Install them where the server runs (pip install {wanted}) and push again; "
            "ModelPort never installs packages at serve time"
        )
