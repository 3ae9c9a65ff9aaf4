import SluiceCore
import Testing

@Suite struct DurationSecondsTests {
    @Test func fractionsAreKept() {
        #expect(Duration.seconds(2).inSeconds == 2)
        #expect(Duration.milliseconds(1500).inSeconds == 1.5)
        #expect(Duration.microseconds(250).inSeconds == 0.00025)
        #expect(Duration.zero.inSeconds == 0)
    }
}
