//! Tool integrity: canonical JSON fingerprints and scanning of tool definitions (pure code, no I/O).
pub mod fingerprint;
pub mod scan;

/// A finding as one line for apps and terminals: "severity kind at location: excerpt".
pub fn render_finding(f: &scan::Finding) -> String {
    format!("{} {} at {}: {}", f.severity, f.kind, f.location, f.excerpt)
}
