extension Duration {
    /// The duration in seconds, fractions included (for messages, rates and
    /// random intervals; `components` alone splits it in two).
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
