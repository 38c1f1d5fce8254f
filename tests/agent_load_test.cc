// The agent under load from many programs at once: eight client processes, run as the
// unprivileged client user, each resolve a key and sign 200 distinct messages through
// keystore's agent client; every signature verifies, and the audit log has each of them
// once, with the pid of the process that asked.
#include "agent_client_support.h"
#include "agent_support.h"

namespace cvtest {
namespace {

using namespace std::chrono_literals;

constexpr int kProcesses = 8;
constexpr int kSignaturesEach = 200;

class AgentLoad : public AgentTest {
 protected:
  void SetUp() override {
    AgentTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    issue("api", 100);
    start_agent();
    ASSERT_FALSE(HasFatalFailure());
    auto r = cv({"access", "api", "allow", "--uid", std::to_string(client_uid_)});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    unlock();
  }
};

// Can fail: a signature answered for another request (or another process), a dropped or
// refused request, a child past its deadline, or a signature the agent did not audit (or
// audited under another pid) each fail it. Checked once with the access rule naming uid 0
// instead of the client user: all eight children exited 1 with the agent's refusal.
TEST_F(AgentLoad, EightProcessesSignTwoHundredTimesEachInParallelAndAllVerify) {
  const auto started = std::chrono::steady_clock::now();
  std::vector<pid_t> children;
  for (int c = 0; c < kProcesses; ++c) {
    children.push_back(fork_child(120s, [&, c]() -> std::string {
      if (!become(kClientUser, client_uid_, client_gid_)) return "cannot become the client user";
      auto client = std::make_shared<certvault::agent::Client>(socket_);
      return resolve_sign_verify(
          client, "api", kSignaturesEach,
          "process " + std::to_string(c) + " pid " + std::to_string(::getpid()));
    }));
    ASSERT_GT(children.back(), 0) << "fork failed";
  }
  const auto statuses = wait_children(children, 180s);
  for (pid_t p : children) {
    const int status = statuses.at(p);
    EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "client pid " << p << " " << describe_status(status) << "\n"
        << read_file(tmp_ / "agent.err");
  }
  const auto took = std::chrono::steady_clock::now() - started;
  std::printf(
      "%d processes x %d signatures: %lld ms\n", kProcesses, kSignaturesEach,
      static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));

  // Every signature audited once, under the pid of the child that asked for it.
  const auto by_pid = ok_signatures_by_pid(audit_log(), "api");
  int total = 0;
  for (const auto& [pid, n] : by_pid) total += n;
  EXPECT_EQ(total, kProcesses * kSignaturesEach);
  EXPECT_EQ(by_pid.size(), static_cast<size_t>(kProcesses));
  for (pid_t p : children) {
    auto it = by_pid.find(p);
    EXPECT_TRUE(it != by_pid.end() && it->second == kSignaturesEach)
        << "pid " << p << ": " << (it == by_pid.end() ? 0 : it->second) << " audited signatures";
  }
}

}  // namespace
}  // namespace cvtest
