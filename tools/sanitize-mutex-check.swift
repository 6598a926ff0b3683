// tools/sanitize.sh builds this with -sanitize=thread before each ThreadSanitizer run: four threads add
// to a counter under Synchronization.Mutex, correctly, and the total comes out exact. If TSan reports a
// race here anyway, this toolchain's TSan cannot see Mutex's lock handover (on Linux, a PI futex the
// kernel hands over), so reports whose every access is inside a withLock body are that blind spot, and
// tools/sanitizer_reports.py sets them apart. On a toolchain where this program is clean, they count.
import Foundation
import Synchronization

struct State {
    var count = 0
    var marks: [Int] = []
}

let state = Mutex(State())
let threads = (0..<4).map { _ in
    Thread {
        for i in 0..<100_000 {
            state.withLock { s in
                s.count += 1
                if i % 1_000 == 0 { s.marks.append(i) }
            }
        }
    }
}
threads.forEach { $0.start() }
while state.withLock({ $0.count }) < 400_000 { usleep(1_000) }
print("count \(state.withLock { $0.count })")
