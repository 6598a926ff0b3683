extension String {
    /// Right-aligned in `n` columns (left-padded with spaces).
    func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
