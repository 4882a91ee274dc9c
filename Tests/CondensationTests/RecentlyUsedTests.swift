import Condensation
import XCTest

/// The bounded map keeps exactly what a plain most-recently-used list with the same bound keeps.
final class RecentlyUsedTests: XCTestCase {
    func testRandomOperationsMatchAListModel() {
        var map = RecentlyUsed<Int, String>(limit: 100)
        var model: [(key: Int, value: String, cost: Int)] = []  // newest first
        var seed: UInt64 = 7
        func random(_ n: Int) -> Int {
            seed = seed &* 6364136223846793005 &+ 1442695040888963407
            return Int((seed >> 33) % UInt64(n))
        }
        for step in 0..<20_000 {
            let key = random(60)
            switch random(4) {
            case 0, 1:
                let cost = 1 + random(30)
                map.insert(key, "v\(step)", cost: cost)
                model.removeAll { $0.key == key }
                model.insert((key, "v\(step)", cost), at: 0)
                while model.reduce(0, { $0 + $1.cost }) > 100 { model.removeLast() }
            case 2:
                let expected = model.firstIndex { $0.key == key }.map { model.remove(at: $0) }
                if let e = expected { model.insert(e, at: 0) }
                XCTAssertEqual(map.get(key), expected?.value, "step \(step)")
            default:
                map.remove(key)
                model.removeAll { $0.key == key }
            }
            XCTAssertEqual(map.count, model.count, "step \(step)")
            XCTAssertEqual(map.cost, model.reduce(0) { $0 + $1.cost }, "step \(step)")
            XCTAssertLessThanOrEqual(map.cost, 100)
        }
        for k in 0..<60 { XCTAssertEqual(map.contains(k), model.contains { $0.key == k }) }
    }

    func testAValueOverTheLimitIsNotKept() {
        var map = RecentlyUsed<Int, Int>(limit: 10)
        map.insert(1, 1, cost: 4)
        map.insert(2, 2, cost: 11)
        XCTAssertFalse(map.contains(2))
        XCTAssertFalse(map.contains(1), "dropped, oldest first, while over the limit")
        XCTAssertEqual(map.cost, 0)
        map.insert(3, 3, cost: 10)
        XCTAssertEqual(map.get(3), 3)
    }
}
