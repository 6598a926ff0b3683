import Testing
@testable import ClewModel
@Test func placeholder() {}
