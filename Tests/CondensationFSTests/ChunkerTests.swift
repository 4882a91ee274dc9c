import Condensation
@testable import CondensationFS
import XCTest

final class ChunkerTests: XCTestCase {
    /// The gear hash one byte at a time, as the format defines it.
    private func referenceBoundary(_ c: Chunker, _ data: [UInt8]) -> Int {
        let n = data.count
        if n <= Chunker.minimumSize { return n }
        let end = min(n, Chunker.maximumSize)
        var h: UInt64 = 0
        for i in (Chunker.minimumSize - 64)..<Chunker.minimumSize { h = (h << 1) &+ c.gear[Int(data[i])] }
        for i in Chunker.minimumSize..<end {
            h = (h << 1) &+ c.gear[Int(data[i])]
            if h & 0x9b97_2021_a540_0000 == 0 { return i + 1 }
        }
        return end
    }

    /// The two-bytes-a-step loop finds exactly the boundaries of the byte-at-a-time definition, at
    /// odd and even positions and at the maximum size.
    func testBoundariesMatchTheByteAtATimeDefinition() {
        var rng = SeededRandom(31)
        let c = Chunker(secrets: Secrets(groupSecret: rng.bytes(32)))
        var odd = 0, even = 0, maximum = 0
        for round in 0..<60 {
            // Some inputs of low entropy too, where cuts are rare and the maximum size matters.
            var data = rng.bytes(Int.random(in: 1...(3 << 20), using: &rng))
            if round % 5 == 0 { for i in data.indices { data[i] &= 0x01 } }
            var start = 0
            while start < data.count {
                let rest = Array(data[start...])
                let got = rest.withUnsafeBytes { c.nextBoundary($0, isFinal: true) }
                let expected = referenceBoundary(c, rest)
                XCTAssertEqual(got, expected, "round \(round) at \(start)")
                if got == expected { if got == Chunker.maximumSize { maximum += 1 } else if got % 2 == 0 { even += 1 } else { odd += 1 } }
                start += max(1, expected)
            }
        }
        XCTAssertGreaterThan(odd, 10)
        XCTAssertGreaterThan(even, 10)
        XCTAssertGreaterThan(maximum, 0)
    }
}
