//! Colours shared by every chart and table of the report, so a series or a
//! fault class has the same colour wherever it appears.

/// Series colours: distinct, readable on white and in greyscale print.
pub const PALETTE: [&str; 10] = [
    "#2563eb", "#ea580c", "#059669", "#7c3aed", "#0891b2", "#db2777", "#ca8a04", "#4b5563",
    "#92400e", "#65a30d",
];

/// A fixed colour per fault class, so the same class looks the same in every report.
pub fn class_color(class: &str) -> &'static str {
    match class {
        "connection_reset" => "#dc2626",
        "unexpected_eof" => "#f97316",
        "read_timeout" => "#7c3aed",
        "connect_refused" => "#0f766e",
        "connect_timeout" => "#06b6d4",
        "dns" => "#65a30d",
        "tls" => "#4d7c0f",
        "range_not_honoured" => "#eab308",
        "digest_mismatch" => "#db2777",
        "client_fd_exhausted" => "#111827",
        "ephemeral_ports_exhausted" => "#6b7280",
        "internal" => "#be185d",
        "other" => "#9ca3af",
        c if c.starts_with("http_5") => "#991b1b",
        c if c.starts_with("http_4") => "#a16207",
        c if c.starts_with("storage_") => "#0e7490",
        _ => "#78716c",
    }
}
