//! The step runner: a generated shell script and the parser of its markers.
