//! UCI text parser.
