//! Helpers the end-to-end tests share: starting processes on free ports and waiting for them.
