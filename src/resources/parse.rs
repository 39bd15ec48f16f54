//! Parsing YAML documents into objects, with errors that name file, document, line, column and field.
