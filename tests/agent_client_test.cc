// A program's connection to the agent, as keystore's agent::Client keeps it: it belongs to
// one process, so a child after fork() (nginx workers, Apache prefork, a daemon that forks
// after loading its key) opens its own instead of sharing the parent's socket; and a client
// whose agent restarted reconnects by itself at its next request.
#include "agent_client_support.h"
#include "agent_support.h"

namespace cvtest {
namespace {

using namespace std::chrono_literals;

constexpr int kChildren = 4;
constexpr int kSignaturesEach = 50;

class AgentClient : public AgentTest {
 protected:
  void SetUp() override {
    AgentTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    issue("api", 100);
    start_agent();
    ASSERT_FALSE(HasFatalFailure());
    unlock();
    ASSERT_FALSE(HasFatalFailure());
    // This test process is the program (root, whom the agent always serves): it resolves
    // and signs once, so its connection sits in the client's pool.
    client_ = std::make_shared<certvault::agent::Client>(socket_);
    auto entry = certvault::agent::resolve(client_, "", "api", std::nullopt);
    ASSERT_TRUE(entry && *entry) << (entry ? "not served" : entry.error().message);
    ASSERT_FALSE((*entry)->locked);
    entry_ = std::move(**entry);
    pub_ = public_key_of(entry_.spki);
    ASSERT_TRUE(pub_);
    ASSERT_EQ(sign_and_verify(entry_.key, pub_.get(), 1, "before fork"), "");
  }

  std::shared_ptr<certvault::agent::Client> client_;
  certvault::agent::RemoteEntry entry_;
  PkeyPtr pub_;
};

// Can fail: with the pid check in Client::take disabled (children keep the parent's pooled
// socket), the five processes' frames interleave on one connection: answers reach the wrong
// process, signatures do not verify or reads break off, and the agent sees one peer pid
// instead of five. Checked once by removing that check: this test then failed.
TEST_F(AgentClient, ForkedChildrenOpenTheirOwnConnectionWhileTheParentSigns) {
  std::vector<pid_t> children;
  for (int c = 0; c < kChildren; ++c) {
    children.push_back(fork_child(60s, [&, c] {
      return sign_and_verify(entry_.key, pub_.get(), kSignaturesEach, "child " + std::to_string(c));
    }));
    ASSERT_GT(children.back(), 0) << "fork failed";
  }
  // The parent signs at the same time, on its pooled connection.
  const std::string parent = sign_and_verify(entry_.key, pub_.get(), kSignaturesEach, "parent");
  const auto statuses = wait_children(children, 120s);
  EXPECT_EQ(parent, "");
  for (pid_t p : children) {
    const int status = statuses.at(p);
    EXPECT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "child " << p << " " << describe_status(status);
  }
  // Five processes, each on its own connection: the agent saw five peer pids.
  const auto by_pid = ok_signatures_by_pid(audit_log(), "api");
  EXPECT_EQ(by_pid.size(), static_cast<size_t>(kChildren + 1));
  EXPECT_EQ(by_pid.count(::getpid()) ? by_pid.at(::getpid()) : 0, 1 + kSignaturesEach);
  for (pid_t p : children)
    EXPECT_EQ(by_pid.count(p) ? by_pid.at(p) : 0, kSignaturesEach) << "child " << p;
}

// Can fail: if the client kept using (or gave up on) its dead pooled connection, the
// signature after the restart would fail with "the agent ... closed the connection".
TEST_F(AgentClient, SameClientSignsAgainAfterTheAgentIsKilledAndRestarted) {
  agent_.kill();  // SIGKILL: no goodbye on the pooled connection
  start_agent();
  ASSERT_FALSE(HasFatalFailure());
  unlock();
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(sign_and_verify(entry_.key, pub_.get(), 3, "after restart"), "");
  // The three signatures reached the new agent.
  const auto by_pid = ok_signatures_by_pid(audit_log(), "api");
  EXPECT_EQ(by_pid.count(::getpid()) ? by_pid.at(::getpid()) : 0, 1 + 3);
}

}  // namespace
}  // namespace cvtest
