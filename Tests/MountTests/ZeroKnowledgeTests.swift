import Foundation
import Glibc
import TestSupport
import XCTest

/// The store holds only ciphertext: no file or directory names, no contents, no xattrs, no symlink targets.
final class ZeroKnowledgeTests: MountTestCase {
    func testStoreHoldsNoNamesContentsOrMetadata() throws {
        try initHome()
        try mount()
        // A distinctive 64-byte pattern repeated through a 2 MiB file (chunked), and small inline files.
        let pattern = "PATTERN-7f3a9c-ORANGE-SUBMARINE-42-distinctive-sixty-four-bytes!"
        XCTAssertEqual(pattern.utf8.count, 64)
        sh("""
        mkdir '\(mnt)/confidential-dir'
        printf 'the quick purple elephant 12345' > '\(mnt)/zebra-unicorn-secret.txt'
        printf 'another hidden walrus 67890' > '\(mnt)/confidential-dir/inner-name-platypus.md'
        python3 -c "import sys; sys.stdout.write('\(pattern)' * 32768)" > '\(mnt)/confidential-dir/large-pattern.bin'
        ln -s 'symlink-target-narwhal' '\(mnt)/link-name-okapi'
        setfattr -n user.xattr-name-quokka -v xattr-value-axolotl '\(mnt)/zebra-unicorn-secret.txt'
        """)
        unmount()
        let store = home + "/store"
        let secrets = ["zebra-unicorn-secret", "the quick purple elephant", "confidential-dir", "inner-name-platypus",
                       "another hidden walrus", "large-pattern", pattern, "symlink-target-narwhal", "link-name-okapi",
                       "xattr-name-quokka", "xattr-value-axolotl", "elephant 12345"]
        for secret in secrets {
            let r = runProcess("grep", ["-r", "-a", "-F", "-l", "--", secret, store])
            XCTAssertEqual(r.status, 1, "the store reveals \(secret.debugDescription) in: \(r.stdout)")
        }
        // Not in UTF-16 either, nor file names of the store.
        let names = sh("find '\(store)' -print")
        for secret in secrets { XCTAssertFalse(names.contains(secret)) }
        // Sanity: grep does find something that is there (the store is not empty, the search works).
        let objectCount = sh("find '\(store)/objects' -type f | wc -l").trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertGreaterThan(Int(objectCount) ?? 0, 3)
        // The large file's content must not appear even half-pattern-wise (no plaintext blocks).
        let half = String(pattern.prefix(32))
        XCTAssertEqual(runProcess("grep", ["-r", "-a", "-F", "-l", "--", half, store]).status, 1)
        // And the mounted view still shows it all.
        try mount()
        XCTAssertEqual(Files.readText(mnt + "/zebra-unicorn-secret.txt"), "the quick purple elephant 12345")
        XCTAssertEqual(sh("getfattr --only-values -n user.xattr-name-quokka '\(mnt)/zebra-unicorn-secret.txt'"), "xattr-value-axolotl")
    }
}
