import Foundation
import TestSupport
import XCTest

/// SyncTestCase with a fault-injecting proxy (FaultProxy.swift) between the devices and the server:
/// devices reach the server only through the proxy. Teardown puts the proxy back to `pass` before the
/// unmounts (their final pushes need a healthy network) and prints its events when the test failed.
/// Measurements are printed as lines starting with "FAULT-METRIC".
class FaultTestCase: SyncTestCase {
    var proxy: FaultProxy!

    override class var directoryPrefix: String { "cdsfs-fault" }
    override class var metricLabel: String { "FAULT-METRIC" }
    override class var logTailLines: Int { 60 }
    override var remoteURL: String { proxy.url }

    override func setUpWithError() throws {
        try super.setUpWithError()
        proxy = try FaultProxy(upstreamPort: server.port, lifetime: 600)
    }

    override func tearDown() {
        proxy?.setMode(.pass)
        super.tearDown()
        proxy?.stop()
        proxy = nil
    }

    override func printDiagnostics() {
        if let events = proxy?.events {
            print("--- proxy events (\(events.count), last 60):\n" + events.suffix(60).joined(separator: "\n"))
        }
    }
}
