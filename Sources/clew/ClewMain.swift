import ArgumentParser
import ClewCLI

@main
struct ClewMain {
    static func main() async {
        await ClewCommand.main(nil)
    }
}
