/// A deterministic generator (SplitMix64), so that every random test repeats from its seed.
public struct SplitMix: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func bytes(_ n: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: n)
        out.withUnsafeMutableBytes { buf in
            var i = 0
            while i + 8 <= n {
                buf.storeBytes(of: next(), toByteOffset: i, as: UInt64.self)
                i += 8
            }
            if i < n {
                let v = next()
                for k in 0..<(n - i) { buf[i + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
            }
        }
        return out
    }
}

/// `n` bytes from a SplitMix seeded with `seed`.
public func randomBytes(_ n: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix(seed: seed)
    return rng.bytes(n)
}
