/// Content-defined chunking (FastCDC-style gear hash with normalised chunking).
///
/// Boundaries depend on the bytes around them, so inserting a byte moves only the chunk it lands in:
/// the rest of the file keeps its chunks, which are stored and sent once. The gear table is keyed
/// with the group secret so that boundaries (visible to the store as chunk sizes) do not reveal
/// content to anyone without the secret.
public struct Chunker: Sendable {
    public static let minimumSize = 64 * 1024
    public static let averageSize = 256 * 1024
    public static let maximumSize = 1024 * 1024

    // Normalised chunking: a harder mask before the average size, an easier one after, which
    // narrows the size distribution around the average.
    // Bits spread over the upper word, where the gear hash mixes the last 48 or so bytes.
    private static let maskHard: UInt64 = 0x1a25_4e90_22fc_0000  // 20 bits
    private static let maskEasy: UInt64 = 0x3778_0a00_418c_0000  // 16 bits

    let gear: [UInt64]

    public init(secrets: Secrets) { gear = secrets.gear }

    /// The length of the next chunk at the start of `data`. With `isFinal`, the data ends there and
    /// the last chunk may be short; otherwise a result equal to `data.count` means "need more data".
    public func nextBoundary(_ data: UnsafeRawBufferPointer, isFinal: Bool) -> Int {
        let n = data.count
        if n <= Self.minimumSize { return n }
        let end = min(n, Self.maximumSize)
        let normal = min(end, Self.averageSize)
        var h: UInt64 = 0
        var i = Self.minimumSize
        return gear.withUnsafeBufferPointer { g in
            let bytes = data.bindMemory(to: UInt8.self)
            while i < normal {
                h = (h << 1) &+ g[Int(bytes[i])]
                if h & Self.maskHard == 0 { return i + 1 }
                i += 1
            }
            while i < end {
                h = (h << 1) &+ g[Int(bytes[i])]
                if h & Self.maskEasy == 0 { return i + 1 }
                i += 1
            }
            return end
        }
    }

    /// Chunk lengths covering all of `data` (the end is a boundary).
    public func split(_ data: UnsafeRawBufferPointer) -> [Int] {
        var lengths: [Int] = []
        var start = 0
        while start < data.count {
            let len = nextBoundary(UnsafeRawBufferPointer(rebasing: data[start...]), isFinal: true)
            lengths.append(len)
            start += len
        }
        return lengths
    }
}
