//! Attio REST API client (work in progress).
