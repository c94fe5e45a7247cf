import Foundation
import LoopCore
import Renderer
import Supervisor
import WorldOSTesting

/// The panel at 1920×1080 against the floor every frame on a screen pays at least once: copying
/// a whole frame (8 MB) into a dumb buffer, measured here as a plain memcpy. A whole frame
/// drawn from nothing (scene, raster, FreeType text) should cost at most 10 copies; a step that
/// changes one reading (the retained scene redraws its damage) at most one. Then the panel's
/// share of a real loop step: steps with the real renderer beside steps whose renderer hands
/// back the frame it drew before, alternating.
func panelBenchmark() throws {
    let (width, height) = (1920, 1080)
    let source = [UInt32](repeating: 0x00123456, count: width * height)
    var target = [UInt32](repeating: 0, count: width * height)
    var copies: [Double] = [], full: [Double] = [], damage: [Double] = [], areas: [Int] = []
    var retained = try PanelRenderer(width: width, height: height, mode: .real)
    _ = retained.render(SamplePanel.posterior(step: 1, temperature: 20), at: Instant(nanoseconds: 0))
    for i in 0..<30 {
        copies.append(milliseconds {
            target.withUnsafeMutableBytes { t in source.withUnsafeBytes { s in _ = memcpy(t.baseAddress!, s.baseAddress!, s.count) } }
        })
        let whole = SamplePanel.posterior(step: i, temperature: 20 + Double(i) / 10)
        full.append(try milliseconds { _ = try PanelRenderer.frame(of: whole, width: width, height: height, mode: .real) })
        let changed = SamplePanel.posterior(step: 1, temperature: 21 + Double(i) / 10)
        var frame: Frame?
        damage.append(milliseconds { frame = retained.render(changed, at: Instant(nanoseconds: UInt64(i))) })
        areas.append(frame?.damage?.reduce(0) { $0 + $1.area } ?? width * height)
    }
    precondition(target[width * height - 1] == source[0])
    let c = median(copies), f = median(full), d = median(damage)
    print("panel (1920×1080, the sample bench: readings, an approval, contexts, twenty processes)")
    print(String(format: "  memcpy of a whole frame (floor):            %7.3f ms  (median of %d)", c, copies.count))
    print(String(format: "  whole frame from nothing:                   %7.3f ms", f))
    print(String(format: "  one reading changed (retained, damage %d px): %5.3f ms", areas[areas.count / 2], d))
    print(String(format: "  ratio whole frame / memcpy:                 %7.3f  (goal ≤ 10: %@)", f / c, f / c <= 10 ? "met" : "NOT MET"))
    print(String(format: "  ratio damage frame / memcpy:                %7.3f  (goal ≤ 1: %@)", d / c, d / c <= 1 ? "met" : "NOT MET"))

    // The panel's share of a real step (1280×800, the PNG's size) on the observer bench's busy
    // host (380 more processes × 20 descriptors): the same loop, its renderer swapped for one
    // that returns its last frame, step for step.
    struct Still: Rendering {
        let frame: Frame
        mutating func render(_ posterior: Posterior, at now: Instant) -> Frame { frame }
    }
    let load = try Load(processes: 380)
    let dir = NSTemporaryDirectory() + "worldos-panel-bench-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var options = SupervisorOptions()
    options.out = dir
    options.keys = dir + "/keys"
    var session = try Supervisor.start(options)
    for _ in 0..<3 { try session.loop.step() }
    let real = session.loop.renderer
    var copy = real
    let last = copy.render(Posterior(step: 0, graph: session.loop.memory, surprise: Surprise(), observedAt: nil), at: Instant(nanoseconds: 0))
    var drawing: [Double] = [], still: [Double] = [], shares: [Double] = []
    for i in 0..<40 {
        // The observer's full rescan (every 20th step) is not timed.
        while (session.loop.stepCount + 1) % 20 == 0 || (session.loop.stepCount + 2) % 20 == 0 { try session.loop.step() }
        // In alternating order, so neither side always follows the other.
        var pair = (0.0, 0.0)
        for drawn in i % 2 == 0 ? [true, false] : [false, true] {
            usleep(100_000)
            session.loop.renderer = drawn ? real : Still(frame: last)
            let t = try milliseconds { _ = try session.loop.step() }
            if drawn { pair.0 = t } else { pair.1 = t }
        }
        drawing.append(pair.0)
        still.append(pair.1)
        shares.append((pair.0 - pair.1) / pair.0)
    }
    session.loop.renderer = real
    try session.loop.finish()
    let a = median(drawing), b = median(still)
    print(String(format: "  loop step drawing the panel:                %7.2f ms  (median of %d; %d load processes × 20 descriptors)", a, drawing.count, load.pids.count))
    print(String(format: "  loop step, panel not drawn (reference):     %7.2f ms", b))
    print(String(format: "  panel's share of a step:                    %7.1f %%  (median of the pairs' own shares)", median(shares) * 100))
}
